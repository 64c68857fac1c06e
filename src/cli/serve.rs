//! `agentc serve`: the OpenAI-compatible HTTP server over one GGUF model.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agentc_runtime::server::{serve as serve_http, shutdown_signal};
use agentc_runtime::{AppState, Engine, EngineOptions, ServingConfig, ServingEngine};
use anyhow::Context;
use clap::Args;

use super::EXIT_INVALID;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// GGUF model file to serve.
    #[arg(long, env = "AGENTC_MODEL")]
    pub model: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "AGENTC_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the address is printed).
    #[arg(long, env = "AGENTC_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Threads for the forward pass.
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
    /// Requests that may wait for a slot; more are answered 429 with Retry-After.
    #[arg(long, env = "AGENTC_MAX_WAITING", default_value_t = ServingConfig::default().max_waiting)]
    pub max_waiting: usize,
    /// Sequences processed at once.
    #[arg(long, env = "AGENTC_MAX_RUNNING", default_value_t = ServingConfig::default().max_running)]
    pub max_running: usize,
    /// KV cache memory in MiB.
    #[arg(long, env = "AGENTC_KV_CACHE_MIB", default_value_t = ServingConfig::default().kv_cache_mib)]
    pub kv_cache_mib: usize,
    /// Most tokens (prompt chunks plus decodes) in one forward pass.
    #[arg(
        long,
        env = "AGENTC_STEP_TOKEN_BUDGET",
        default_value_t = ServingConfig::default().step_token_budget
    )]
    pub step_token_budget: usize,
    /// Do not reuse the KV cache of prompt prefixes shared between requests.
    #[arg(long, env = "AGENTC_NO_PREFIX_CACHING")]
    pub no_prefix_caching: bool,
    /// Run one request at a time instead of batching sequences into one forward pass.
    #[arg(long, env = "AGENTC_NO_BATCHING")]
    pub no_batching: bool,
    /// The model name clients send and `/v1/models` shows (default: the file name without
    /// its extension).
    #[arg(long, env = "AGENTC_SERVED_MODEL_NAME")]
    pub served_model_name: Option<String>,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let options = EngineOptions {
        threads: args.threads,
        ..EngineOptions::default()
    };
    let engine = match Engine::load_with(&args.model, &options) {
        Ok(engine) => Arc::new(engine),
        Err(e) => {
            eprintln!("error: cannot load {}: {e}", args.model.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let config = ServingConfig {
        max_waiting: args.max_waiting,
        max_running: args.max_running,
        step_token_budget: args.step_token_budget,
        kv_cache_mib: args.kv_cache_mib,
        prefix_caching: !args.no_prefix_caching,
        batching: !args.no_batching,
        ..ServingConfig::default()
    };
    let serving = match ServingEngine::start(engine, config) {
        Ok(serving) => serving,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let model_id = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| agentc_runtime::model_id_from_path(&args.model));
    let state = AppState::new(serving.clone(), model_id);

    // The HTTP side is light; the forward pass runs on the engine's own thread pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let address = format!("{}:{}", args.host, args.port);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{bound}")?;
            out.flush()?;
        }
        serve_http(listener, agentc_runtime::router(state), shutdown_signal())
            .await
            .context("the HTTP server failed")
    });
    serving.shutdown();
    result.map(|()| ExitCode::SUCCESS)
}
