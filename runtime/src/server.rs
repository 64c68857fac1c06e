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
pub use workflows::{DEFAULT_RUN_RETENTION, RunRequest, WorkflowState, workflow_router};

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

/// Limits on the connections a server holds.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A request's head must arrive within this, or the connection is closed (a client that
    /// opens connections and sends nothing cannot hold them).
    pub header_read_timeout: std::time::Duration,
    /// After shutdown is asked, open requests (streams included) get this long to finish.
    pub shutdown_deadline: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: std::time::Duration::from_secs(10),
            shutdown_deadline: std::time::Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish
/// (within the default [`ConnectionLimits`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ConnectionLimits::default()).await
}

/// [`serve`] with explicit limits: at most `max_connections` at once, request heads within
/// `header_read_timeout`, and at most `shutdown_deadline` for open requests after shutdown.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A failed accept (the peer reset, out of descriptors) ends that connection,
                // not the server.
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: the connection limit is reached"
            );
            drop(stream);
            continue;
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection error (the client went away, a malformed or late head) concerns
            // that connection only.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline_s = limits.shutdown_deadline.as_secs(),
            "shutdown deadline passed with requests still open; closing them"
        );
    }
    Ok(())
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
