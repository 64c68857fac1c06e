//! The OpenAI-compatible HTTP server over a [`ServingEngine`]: `/v1/completions`,
//! `/v1/chat/completions` (both with SSE streaming), `/v1/models`, `/health` and `/metrics`.
//!
//! [`router`] builds the routes over an [`AppState`]; more routes (workflow runs) merge into the
//! same `axum::Router`. [`serve`] runs a router on a listener until a shutdown future resolves.
//! Errors become HTTP statuses in one place, `ApiError`'s `IntoResponse`.

mod auth;
mod error;
mod logprobs;
mod metrics;
mod openai;
mod routes;
mod sse;
mod tool_calls;
mod workflows;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};

use crate::serving::ServingEngine;

pub use auth::{ApiKeys, require_api_keys};
pub use error::{ApiError, JsonBody, parse_json};
pub use metrics::{Metrics, RequestTracker};
pub use workflows::{RunRequest, WorkflowState, workflow_router};

/// What every handler shares: the serving engine, the served model's name and the metrics.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    serving: ServingEngine,
    model_id: String,
    metrics: Arc<Metrics>,
    /// When the server started, in Unix seconds (`/v1/models`' `created`).
    created: u64,
    /// The workflows served beside the model (`agentc serve --plan/--workflow`).
    workflows: Option<WorkflowState>,
}

impl AppState {
    /// `model_id` is the name clients use in `model` and see in `/v1/models`.
    pub fn new(serving: ServingEngine, model_id: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(StateInner {
                serving,
                model_id: model_id.into(),
                metrics: Arc::new(Metrics::default()),
                created: unix_seconds(),
                workflows: None,
            }),
        }
    }

    /// The same server state, also reporting `workflows`' counters in `/metrics`.
    pub fn with_workflows(
        serving: ServingEngine,
        model_id: impl Into<String>,
        workflows: WorkflowState,
    ) -> Self {
        Self {
            inner: Arc::new(StateInner {
                serving,
                model_id: model_id.into(),
                metrics: Arc::new(Metrics::default()),
                created: unix_seconds(),
                workflows: Some(workflows),
            }),
        }
    }

    pub fn workflows(&self) -> Option<&WorkflowState> {
        self.inner.workflows.as_ref()
    }

    pub fn serving(&self) -> &ServingEngine {
        &self.inner.serving
    }

    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Refuses a request naming another model (absent means this one).
    fn check_model(&self, requested: Option<&str>) -> Result<(), ApiError> {
        match requested {
            Some(name) if name != self.inner.model_id => Err(ApiError::ModelNotFound {
                requested: name.to_owned(),
                served: self.inner.model_id.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The OpenAI-compatible routes, `/health` and `/metrics` over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/completions", post(routes::completions))
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/models", get(routes::models))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The largest request body read (a bigger one is answered 413 before it is parsed).
pub const MAX_BODY_BYTES: usize = 10 << 20;

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        // If the handler cannot be installed, only SIGTERM (below) stops the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The model name a server shows for a model file: its file name without the extension.
pub fn model_id_from_path(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
