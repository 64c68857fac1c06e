//! API keys: with keys configured, every route but `/health` needs `Authorization: Bearer KEY`
//! with one of them (OpenAI clients send their `api_key` this way).

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// The accepted keys.
#[derive(Clone, Debug)]
pub struct ApiKeys(Arc<Vec<Vec<u8>>>);

impl ApiKeys {
    /// Reads one key per line; blank lines and lines starting with `#` are skipped.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let keys: Vec<Vec<u8>> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect();
        if keys.is_empty() {
            return Err("no keys (one key per line)".to_owned());
        }
        if let Some(short) = keys.iter().position(|k| k.len() < 16) {
            return Err(format!(
                "key {} is shorter than 16 characters; use long random keys",
                short + 1
            ));
        }
        Ok(Self(Arc::new(keys)))
    }

    /// Whether `presented` is one of the keys, compared in time that does not depend on where
    /// the bytes differ.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.0.iter().fold(false, |found, key| {
            let same = key.len() == presented.len()
                && key
                    .iter()
                    .zip(presented)
                    .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                    == 0;
            found | same
        })
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (the API key), trimmed.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// `router` with every route but `/health` behind `keys`.
pub fn require_api_keys(router: Router, keys: ApiKeys) -> Router {
    router.layer(middleware::from_fn_with_state(keys, check))
}

async fn check(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let presented = bearer(request.headers());
    match presented {
        Some(key) if keys.accepts(key.as_bytes()) => next.run(request).await,
        _ => {
            let message = if presented.is_some() {
                "the API key is not valid"
            } else {
                "an API key is required: send `Authorization: Bearer KEY`"
            };
            let body = serde_json::json!({"error": {
                "message": message, "type": "invalid_request_error",
                "param": null, "code": "invalid_api_key"
            }});
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(body),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_one_per_line_and_compared_whole() {
        let keys =
            ApiKeys::parse("# ops keys\nsk-0123456789abcdef\n\n  sk-fedcba9876543210  \n").unwrap();
        assert!(keys.accepts(b"sk-0123456789abcdef"));
        assert!(keys.accepts(b"sk-fedcba9876543210"));
        assert!(!keys.accepts(b"sk-0123456789abcde"));
        assert!(!keys.accepts(b"sk-0123456789abcdeF"));
        assert!(!keys.accepts(b""));
        assert_eq!(
            ApiKeys::parse("# none\n\n").unwrap_err(),
            "no keys (one key per line)"
        );
        assert!(
            ApiKeys::parse("short")
                .unwrap_err()
                .contains("shorter than 16")
        );
    }
}
