//! YAML loading with positions: every error a user can cause carries `file:line:col`.

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use crate::error::{Error, Result};

/// Parses one YAML document, mapping parser errors to [`Error::Parse`] with 1-based positions.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    // Snippets are off so that the message is one line we can prefix with `file:line:col`.
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        let (line, column) = err
            .location()
            .map_or((0, 0), |loc| (loc.line(), loc.column()));
        Error::Parse {
            origin: origin.to_string(),
            line,
            column,
            message: bare_message(&err),
        }
    })
}

/// The parser's message without its own position suffix (we print the position first,
/// compiler style).
fn bare_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// An error at a known position of a YAML file.
pub(crate) fn error_at(origin: &str, at: &Location, message: impl Into<String>) -> Error {
    Error::Parse {
        origin: origin.to_string(),
        line: at.line(),
        column: at.column(),
        message: message.into(),
    }
}

/// Checks that a spanned number is finite and strictly positive.
pub(crate) fn positive(origin: &str, value: &Spanned<f64>, what: &str) -> Result<f64> {
    if value.value.is_finite() && value.value > 0.0 {
        Ok(value.value)
    } else {
        Err(error_at(
            origin,
            &value.referenced,
            format!("{what} must be a positive number, got {}", value.value),
        ))
    }
}

/// Checks that a spanned number is finite and not negative.
pub(crate) fn non_negative(origin: &str, value: &Spanned<f64>, what: &str) -> Result<f64> {
    if value.value.is_finite() && value.value >= 0.0 {
        Ok(value.value)
    } else {
        Err(error_at(
            origin,
            &value.referenced,
            format!(
                "{what} must be zero or a positive number, got {}",
                value.value
            ),
        ))
    }
}

/// Checks that a spanned number is a fraction in (0, 1].
pub(crate) fn fraction(origin: &str, value: &Spanned<f64>, what: &str) -> Result<f64> {
    if value.value.is_finite() && value.value > 0.0 && value.value <= 1.0 {
        Ok(value.value)
    } else {
        Err(error_at(
            origin,
            &value.referenced,
            format!("{what} must be in (0, 1], got {}", value.value),
        ))
    }
}

/// Checks a `YYYY-MM` or `YYYY-MM-DD` date (the date a price was read).
pub(crate) fn date(origin: &str, value: &Spanned<String>, what: &str) -> Result<String> {
    let text = value.value.as_str();
    let parts: Vec<&str> = text.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match parts.as_slice() {
        [y, m] => digits(y, 4) && digits(m, 2),
        [y, m, d] => digits(y, 4) && digits(m, 2) && digits(d, 2),
        _ => false,
    };
    if ok {
        Ok(text.to_string())
    } else {
        Err(error_at(
            origin,
            &value.referenced,
            format!("{what} must be a date like 2025-06 or 2025-06-30, got `{text}`"),
        ))
    }
}

/// The candidate closest to `name` by edit distance, for "did you mean" hints.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}
