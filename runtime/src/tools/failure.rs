//! Why one tool call failed; the router reroutes on these and the metrics count them by kind.

use std::fmt;

/// Characters of a tool's output quoted in an error.
const SNIPPET_CHARS: usize = 120;

/// One failed call. Displayed after the tool's name: "tool calc timed out after 2000 ms".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolFailure {
    /// The arguments are not a JSON object; no fallback would do better, so this is not rerouted.
    BadArguments(String),
    /// The declaration cannot be run (no command, no URL, an unknown method).
    Misconfigured(String),
    /// The program could not be started.
    Spawn(String),
    Timeout {
        ms: u64,
    },
    OutputTooLarge {
        limit: u64,
    },
    /// A subprocess exited unsuccessfully; `detail` is the tail of its stderr (or of its stdout
    /// when stderr was empty). `answered`: it exited normally with a JSON object holding
    /// `"error"` on stdout, the tool protocol's way of refusing its input.
    Exit {
        status: String,
        detail: String,
        answered: bool,
    },
    InvalidJson {
        reason: String,
        snippet: String,
    },
    /// `output: text` but the bytes are not UTF-8.
    InvalidText,
    HttpStatus {
        status: u16,
        body: String,
    },
    /// The HTTP request could not be sent or its answer not read.
    Unreachable(String),
    /// Skipped without a call: the tool's circuit breaker is open.
    BreakerOpen,
}

/// Failure categories, for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    BadArguments,
    Misconfigured,
    Spawn,
    Timeout,
    OutputTooLarge,
    Exit,
    InvalidOutput,
    HttpStatus,
    Unreachable,
    BreakerOpen,
}

impl FailureKind {
    pub const ALL: [FailureKind; 10] = [
        Self::BadArguments,
        Self::Misconfigured,
        Self::Spawn,
        Self::Timeout,
        Self::OutputTooLarge,
        Self::Exit,
        Self::InvalidOutput,
        Self::HttpStatus,
        Self::Unreachable,
        Self::BreakerOpen,
    ];

    /// Label for metrics (`failures{kind="timeout"}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadArguments => "bad_arguments",
            Self::Misconfigured => "misconfigured",
            Self::Spawn => "spawn",
            Self::Timeout => "timeout",
            Self::OutputTooLarge => "output_too_large",
            Self::Exit => "exit",
            Self::InvalidOutput => "invalid_output",
            Self::HttpStatus => "http_status",
            Self::Unreachable => "unreachable",
            Self::BreakerOpen => "breaker_open",
        }
    }
}

impl ToolFailure {
    /// Whether this says the tool is unhealthy (it timed out, crashed, could not be started or
    /// reached, answered 5xx, 408 or 429, or wrote garbage) rather than that it refused this
    /// call's input (an `{"error": ...}` answer, an HTTP 4xx) or that the call was never made.
    /// Only unhealthy failures move the circuit breaker, so one client's bad requests cannot
    /// switch a tool off for everyone.
    pub fn is_health_failure(&self) -> bool {
        match self {
            Self::BadArguments(_) | Self::BreakerOpen => false,
            Self::Exit { answered, .. } => !answered,
            Self::HttpStatus { status, .. } => {
                !(400..500).contains(status) || matches!(status, 408 | 429)
            }
            Self::Misconfigured(_)
            | Self::Spawn(_)
            | Self::Timeout { .. }
            | Self::OutputTooLarge { .. }
            | Self::InvalidJson { .. }
            | Self::InvalidText
            | Self::Unreachable(_) => true,
        }
    }

    pub fn kind(&self) -> FailureKind {
        match self {
            Self::BadArguments(_) => FailureKind::BadArguments,
            Self::Misconfigured(_) => FailureKind::Misconfigured,
            Self::Spawn(_) => FailureKind::Spawn,
            Self::Timeout { .. } => FailureKind::Timeout,
            Self::OutputTooLarge { .. } => FailureKind::OutputTooLarge,
            Self::Exit { .. } => FailureKind::Exit,
            Self::InvalidJson { .. } | Self::InvalidText => FailureKind::InvalidOutput,
            Self::HttpStatus { .. } => FailureKind::HttpStatus,
            Self::Unreachable(_) => FailureKind::Unreachable,
            Self::BreakerOpen => FailureKind::BreakerOpen,
        }
    }
}

impl fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadArguments(why) => write!(f, "got invalid arguments: {why}"),
            Self::Misconfigured(why) => write!(f, "cannot be run: {why}"),
            Self::Spawn(why) => write!(f, "could not be started: {why}"),
            Self::Timeout { ms } => write!(f, "timed out after {ms} ms"),
            Self::OutputTooLarge { limit } => write!(f, "wrote more than {limit} bytes"),
            Self::Exit { status, detail, .. } if detail.is_empty() => {
                write!(f, "exited with {status} and printed nothing")
            }
            Self::Exit { status, detail, .. } => write!(f, "exited with {status}: {detail}"),
            Self::InvalidJson { reason, snippet } => {
                write!(f, "returned invalid JSON ({reason}): {snippet:?}")
            }
            Self::InvalidText => write!(f, "returned text that is not UTF-8"),
            Self::HttpStatus { status, body } if body.is_empty() => {
                write!(f, "answered HTTP {status}")
            }
            Self::HttpStatus { status, body } => write!(f, "answered HTTP {status}: {body:?}"),
            Self::Unreachable(why) => write!(f, "could not be reached: {why}"),
            Self::BreakerOpen => write!(f, "was skipped: its circuit breaker is open"),
        }
    }
}

/// The first [`SNIPPET_CHARS`] characters of `text`, trimmed, with `...` when cut.
pub fn snippet(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The last [`SNIPPET_CHARS`] characters of `text`, trimmed, with `...` when cut.
pub fn tail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= SNIPPET_CHARS {
        return text.to_string();
    }
    let start = text
        .char_indices()
        .nth(count - SNIPPET_CHARS)
        .map(|(i, _)| i)
        .unwrap_or(0);
    format!("...{}", &text[start..])
}
