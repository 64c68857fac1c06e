//! The server's errors and the one place that turns them into HTTP statuses and OpenAI-style
//! bodies: `{"error": {"message", "type", "param", "code"}}`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::serving::SubmitError;
use agentc_engine::Error as EngineError;

/// Seconds an overloaded client is told to wait (`Retry-After`) before retrying.
const RETRY_AFTER_SECONDS: u64 = 1;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or a field has the wrong type or is missing.
    #[error("{message}")]
    InvalidBody {
        message: String,
        param: Option<String>,
    },
    /// A field is well-formed but its value is out of range.
    #[error("{param}: {message}")]
    InvalidParam { param: String, message: String },
    /// The prompt and `max_tokens` do not fit in the context.
    #[error(
        "this model's maximum context length is {capacity} tokens; the request needs {needed} \
         ({prompt_tokens} in the prompt, {max_tokens} to generate); shorten the prompt or lower \
         max_tokens"
    )]
    ContextLengthExceeded {
        capacity: usize,
        needed: usize,
        prompt_tokens: usize,
        max_tokens: usize,
        param: &'static str,
    },
    /// A workflow or run that does not exist.
    #[error("{message}")]
    NotFound {
        param: &'static str,
        message: String,
    },
    #[error("the model `{requested}` does not exist; this server serves `{served}`")]
    ModelNotFound { requested: String, served: String },
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A workflow run or another part of the runtime.
    #[error(transparent)]
    Runtime(#[from] Error),
    /// The serving engine ended a sequence without a final event.
    #[error("the serving engine stopped before the request finished")]
    EngineStopped,
    /// The body is over [`crate::server::MAX_BODY_BYTES`].
    #[error("the request body is over the limit of {} MiB", crate::server::MAX_BODY_BYTES >> 20)]
    BodyTooLarge,
    /// The model's reply could not be read as the tool calls its format promises; it is not
    /// passed on.
    #[error("the model's tool call cannot be parsed: {0}")]
    MalformedToolCall(String),
}

impl ApiError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidParam {
            param: param.into(),
            message: message.into(),
        }
    }

    /// The HTTP status, the OpenAI error `type`, `param` and `code` of this error.
    fn classify(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        Option<String>,
        Option<&'static str>,
    ) {
        const INVALID: &str = "invalid_request_error";
        match self {
            Self::InvalidBody { param, .. } => {
                (StatusCode::BAD_REQUEST, INVALID, param.clone(), None)
            }
            Self::InvalidParam { param, .. } => {
                (StatusCode::BAD_REQUEST, INVALID, Some(param.clone()), None)
            }
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID,
                None,
                Some("request_too_large"),
            ),
            Self::ContextLengthExceeded { param, .. } => (
                StatusCode::BAD_REQUEST,
                INVALID,
                Some((*param).to_owned()),
                Some("context_length_exceeded"),
            ),
            Self::NotFound { param, .. } => (
                StatusCode::NOT_FOUND,
                INVALID,
                Some((*param).to_owned()),
                Some("not_found"),
            ),
            Self::ModelNotFound { .. } => (
                StatusCode::NOT_FOUND,
                INVALID,
                Some("model".to_owned()),
                Some("model_not_found"),
            ),
            Self::Submit(SubmitError::Overloaded { .. }) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                None,
                Some("rate_limit_exceeded"),
            ),
            Self::Submit(SubmitError::ShutDown) => {
                (StatusCode::SERVICE_UNAVAILABLE, "server_error", None, None)
            }
            Self::Submit(SubmitError::Invalid(error))
            | Self::Engine(error)
            | Self::Runtime(Error::Engine(error)) => classify_engine(error),
            Self::Runtime(Error::InvalidRequest(_) | Error::Inputs(_)) => {
                (StatusCode::BAD_REQUEST, INVALID, None, None)
            }
            Self::Runtime(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                None,
            ),
            Self::EngineStopped | Self::MalformedToolCall(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                None,
            ),
        }
    }

    /// The OpenAI-style error object (also sent as an SSE event when a stream fails).
    pub fn body(&self) -> serde_json::Value {
        let (_, kind, param, code) = self.classify();
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": kind,
                "param": param,
                "code": code,
            }
        })
    }

    pub fn status(&self) -> StatusCode {
        self.classify().0
    }
}

fn classify_engine(
    error: &EngineError,
) -> (
    StatusCode,
    &'static str,
    Option<String>,
    Option<&'static str>,
) {
    match error {
        EngineError::ContextFull { .. } => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            Some("context_length_exceeded"),
        ),
        EngineError::InvalidRequest(_)
        | EngineError::TokenOutOfRange { .. }
        | EngineError::InvalidConstraint(_)
        | EngineError::IncompleteOutput { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request_error", None, None)
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            None,
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// A JSON body whose errors name the field: `messages[0].role: missing field`,
/// `temperature: invalid type: string "hot", expected f32`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before any of the body is read.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > crate::server::MAX_BODY_BYTES as u64) {
            return Err(ApiError::BodyTooLarge);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge
                } else {
                    ApiError::InvalidBody {
                        message: format!("cannot read the request body: {}", rejection.body_text()),
                        param: None,
                    }
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        describe_json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|error| describe_json_error(".", &error))?;
    Ok(value)
}

fn describe_json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    if matches!(
        error.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return ApiError::InvalidBody {
            message: format!("the request body is not valid JSON: {error}"),
            param: None,
        };
    }
    let text = error.to_string();
    let located = format!(" at line {} column {}", error.line(), error.column());
    let text = text.strip_suffix(&located).unwrap_or(&text);
    // serde reports a missing field at the enclosing object; name the field itself.
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let param = if path == "." {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ApiError::InvalidBody {
            message: format!("{param}: missing field"),
            param: Some(param),
        };
    }
    if path == "." {
        return ApiError::InvalidBody {
            message: format!("the request body: {text}"),
            param: None,
        };
    }
    ApiError::InvalidBody {
        message: format!("{path}: {text}"),
        param: Some(path.to_owned()),
    }
}
