//! Prints our logits for the recorded llama.cpp top-2 tokens of each reference case's first step.
//! Usage: cargo run --release -p agentc-runtime --example compare_logits -- MODEL.gguf FIXTURE.json

use agentc_runtime::{Engine, Prompt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: compare_logits MODEL.gguf FIXTURE.json")?;
    let fixture = args
        .next()
        .ok_or("usage: compare_logits MODEL.gguf FIXTURE.json")?;
    let engine = Engine::load(&model)?;
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture)?)?;
    for (i, case) in reference["cases"]
        .as_array()
        .ok_or("no cases")?
        .iter()
        .enumerate()
    {
        let text = case["text"].as_str().ok_or("no text")?;
        let tokens = engine.prompt_tokens(&Prompt::Text(text.to_owned()))?;
        let logits = engine.logits(&tokens)?;
        let step = &case["steps"][0];
        let (t1, t2) = (
            step["top1"].as_u64().ok_or("top1")? as usize,
            step["top2"].as_u64().ok_or("top2")? as usize,
        );
        println!(
            "[{i:2}] n={:3} llama.cpp {t1}:{:.4} {t2}:{:.4} | ours {t1}:{:.4} {t2}:{:.4} | diff {:+.4} {:+.4}",
            tokens.len(),
            step["top1_logit"].as_f64().unwrap_or(0.0),
            step["top2_logit"].as_f64().unwrap_or(0.0),
            logits[t1],
            logits[t2],
            f64::from(logits[t1]) - step["top1_logit"].as_f64().unwrap_or(0.0),
            f64::from(logits[t2]) - step["top2_logit"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
