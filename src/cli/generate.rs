//! `agentc generate`: one completion from the command line, streamed as it is produced.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use agentc_runtime::{ChatMessage, Engine, EngineOptions, GenerateRequest, Prompt, SamplingParams};
use clap::Args;

use super::EXIT_INVALID;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// GGUF model file.
    #[arg(
        long,
        env = "AGENTC_MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// Send the prompt as a user message through the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// 0 keeps all tokens.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the text contains this (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Threads for the forward pass.
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    if !(args.temperature >= 0.0 && args.top_p > 0.0 && args.top_p <= 1.0) || args.threads == 0 {
        eprintln!("error: need --temperature >= 0, 0 < --top-p <= 1 and --threads >= 1");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let options = EngineOptions {
        threads: args.threads,
        ..EngineOptions::default()
    };
    let engine = match Engine::load_with(&args.model, &options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot load {}: {e}", args.model.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", &args.prompt));
        Prompt::Chat(messages)
    } else {
        Prompt::Text(args.prompt.clone())
    };
    let request = GenerateRequest {
        logit_bias: Vec::new(),
        logprobs: None,
        constraint: None,
        prompt,
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop: args.stop.clone(),
    };
    let mut out = std::io::stdout().lock();
    let result = engine.generate_streaming(&request, |event| {
        // A closed stdout (a pipe into `head`) stops generation instead of failing.
        match out
            .write_all(event.text.as_bytes())
            .and_then(|_| out.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    });
    let generation = match result {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let _ = writeln!(out);
    let t = &generation.timings;
    eprintln!(
        "{} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s ({:?})",
        t.prompt_tokens,
        t.prefill_tokens_per_second(),
        t.generated_tokens,
        t.decode_tokens_per_second(),
        generation.finish_reason
    );
    Ok(ExitCode::SUCCESS)
}
