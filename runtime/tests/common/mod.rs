//! What the server tests share: the bundled model's engine, a server on a free loopback port,
//! and SSE parsing.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentc_runtime::server::ConnectionLimits;
use agentc_runtime::{AppState, Engine, GenerateRequest, Prompt, ServingConfig, ServingEngine};
use serde_json::Value;

pub const MODEL_ID: &str = "SmolLM2-135M-Instruct.Q4_1";
/// A prompt the model continues by counting, so it does not stop on its own.
pub const COUNTING_PROMPT: &str = "1, 2, 3, 4, 5, 6, 7, 8,";
/// Generous bound for conditions that become true within milliseconds on a quiet machine.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(120);

pub fn engine() -> Option<Arc<Engine>> {
    static ENGINE: OnceLock<Option<Arc<Engine>>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
            if !agentc_runtime::bundled::present(&path) {
                return None;
            }
            Some(Arc::new(
                Engine::load(&path).expect("the bundled model loads"),
            ))
        })
        .clone()
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    pub async fn start(config: ServingConfig) -> Option<Self> {
        Some(Self::start_with(engine()?, config).await)
    }

    pub async fn start_with(engine: Arc<Engine>, config: ServingConfig) -> Self {
        Self::start_limited(engine, config, ConnectionLimits::default()).await
    }

    pub async fn start_limited(
        engine: Arc<Engine>,
        config: ServingConfig,
        limits: ConnectionLimits,
    ) -> Self {
        let serving = ServingEngine::start(engine, config).expect("serving starts");
        let state = AppState::new(serving, MODEL_ID);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("has an address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = agentc_runtime::router(state.clone());
        tokio::spawn(agentc_runtime::server::serve_with(
            listener,
            router,
            async {
                let _ = stopped.await;
            },
            limits,
        ));
        Self {
            base,
            state,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.post(path, &body.to_string()).await;
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// Waits until `condition` holds on the serving engine's stats.
    pub async fn wait_for(
        &self,
        what: &str,
        condition: impl Fn(&agentc_runtime::ServingStats) -> bool,
    ) {
        let started = Instant::now();
        loop {
            let stats = self.state.serving().stats();
            if condition(&stats) {
                return;
            }
            assert!(
                started.elapsed() < POLL_TIMEOUT,
                "timed out waiting for {what}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut data = Vec::new();
    for line in body.lines() {
        if let Some(payload) = line.strip_prefix("data: ") {
            data.push(payload.to_owned());
        } else {
            assert!(line.is_empty(), "unexpected SSE line {line:?} in {body:?}");
        }
    }
    data
}

pub fn expected(engine: &Engine, prompt: Prompt, max_tokens: usize) -> agentc_runtime::Generation {
    engine
        .generate(&GenerateRequest {
            prompt,
            ..GenerateRequest::greedy("", max_tokens)
        })
        .expect("generates")
}
