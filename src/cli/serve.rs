//! `agentc serve`: the OpenAI-compatible HTTP server over one GGUF model, and the workflow
//! runs of compiled plans (`--plan`, `--workflow`) on the same engines.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use agentc_runtime::server::{
    WorkflowState, serve as serve_http, shutdown_signal, workflow_router,
};
use agentc_runtime::{AppState, Program, ServingConfig, ServingEngine};
use anyhow::Context;
use clap::Args;

use super::EXIT_INVALID;
use super::run::{compile_program, engine_for, runner_with_engines};
use agentc_plan::decl::ModelKind;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// GGUF model file to serve on the OpenAI endpoints (default: the first LLM model of the
    /// first workflow served).
    #[arg(long, env = "AGENTC_MODEL", required_unless_present_any = ["plan", "workflow"])]
    pub model: Option<PathBuf>,
    /// A plan directory (from `agentc build --cluster C -o DIR`) to serve at
    /// POST /v1/workflows/{name}/runs. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub plan: Vec<PathBuf>,
    /// A workflow file to compile for this machine and serve like --plan. Repeatable.
    #[arg(long, value_name = "WF.yaml")]
    pub workflow: Vec<PathBuf>,
    /// Workflow runs in flight at once; more are answered 429 with Retry-After.
    #[arg(long, env = "AGENTC_MAX_RUNS", default_value_t = 64)]
    pub max_runs: usize,
    /// Seconds a finished workflow run's record stays readable at `GET /v1/runs/{id}` (the
    /// 1,000 most recent at most).
    #[arg(
        long,
        env = "AGENTC_RUN_RETENTION",
        value_name = "SECS",
        default_value_t = agentc_runtime::server::DEFAULT_RUN_RETENTION.as_secs()
    )]
    pub run_retention: u64,
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
    /// A Jinja chat template file to use for --model instead of the one in the model file
    /// (for example one that defines tool calling).
    #[arg(long, value_name = "FILE", requires = "model")]
    pub chat_template_file: Option<PathBuf>,
    /// A file of API keys, one per line: every request but `GET /health` must send
    /// `Authorization: Bearer KEY` with one of them. Required to listen on a non-loopback
    /// address.
    #[arg(long, env = "AGENTC_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let keys = match &args.api_key_file {
        Some(file) => match agentc_runtime::server::ApiKeys::load(file) {
            Ok(keys) => Some(keys),
            Err(e) => {
                eprintln!("error: --api-key-file: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        },
        None => None,
    };
    let loopback = args.host == "localhost"
        || args
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if keys.is_none() && !loopback {
        eprintln!(
            "error: --host {} is reachable from other machines; give --api-key-file so that \
             only clients with a key are served",
            args.host
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let config = ServingConfig {
        max_waiting: args.max_waiting,
        max_running: args.max_running,
        step_token_budget: args.step_token_budget,
        kv_cache_mib: args.kv_cache_mib,
        prefix_caching: !args.no_prefix_caching,
        batching: !args.no_batching,
        ..ServingConfig::default()
    };
    // The served model first when it has its own chat template; then the workflows' models,
    // which share engines with it by file.
    let mut engines: HashMap<PathBuf, ServingEngine> = HashMap::new();
    if let (Some(model), Some(file)) = (&args.model, &args.chat_template_file) {
        let template = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!(
                    "error: cannot read --chat-template-file {}: {e}",
                    file.display()
                );
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        if let Err(e) = engine_for(model, &mut engines, &config, args.threads, Some(template)) {
            eprintln!("error: cannot load {}: {e:#}", model.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    }
    let mut runners = Vec::new();
    let programs = args
        .plan
        .iter()
        .map(|dir| Program::load(dir).map_err(|e| e.to_string()))
        .chain(
            args.workflow
                .iter()
                .map(|wf| match compile_program(wf, None, None) {
                    Ok(Some(p)) => Ok(p),
                    Ok(None) => Err(format!("cannot compile {}", wf.display())),
                    Err(e) => Err(format!("{e:#}")),
                }),
        );
    let mut first_llm = None;
    for program in programs {
        let program = match program {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        if first_llm.is_none() {
            first_llm = program
                .models()
                .iter()
                .find(|m| m.kind == ModelKind::Llm)
                .map(|m| program.model_path(m));
        }
        match runner_with_engines(program, &mut engines, &config, args.threads) {
            Ok(runner) => runners.push(runner),
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    let Some(model) = args.model.clone().or(first_llm) else {
        eprintln!("error: no --model given and the workflows use no LLM model");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let serving = match engine_for(&model, &mut engines, &config, args.threads, None) {
        Ok(serving) => serving,
        Err(e) => {
            eprintln!("error: cannot load {}: {e:#}", model.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let model_id = args
        .served_model_name
        .clone()
        .unwrap_or_else(|| agentc_runtime::model_id_from_path(&model));
    let workflows = WorkflowState::with_retention(
        runners,
        args.max_runs.max(1),
        std::time::Duration::from_secs(args.run_retention),
    );
    let state = AppState::with_workflows(serving.clone(), model_id, workflows.clone());
    let mut app = agentc_runtime::router(state).merge(workflow_router(workflows));
    if let Some(keys) = keys {
        app = agentc_runtime::server::require_api_keys(app, keys);
    }

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
        serve_http(listener, app, shutdown_signal())
            .await
            .context("the HTTP server failed")
    });
    for engine in engines.values() {
        engine.shutdown();
    }
    result.map(|()| ExitCode::SUCCESS)
}
