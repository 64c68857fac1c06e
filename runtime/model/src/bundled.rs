//! What a test that needs a bundled model (installed by `scripts/setup.sh` into `models/`) does
//! when the file is missing: it fails and says how to install it. Skipping is only for a
//! machine that asks for it with `AGENTC_ALLOW_SKIP=1` (CI never sets it), and is then printed.

use std::path::Path;

/// The environment variable that lets tests skip when the bundled models are missing.
pub const ALLOW_SKIP: &str = "AGENTC_ALLOW_SKIP";

/// Whether `path` (a bundled model file or folder) exists. When it does not, panics with the
/// command that installs it, unless `AGENTC_ALLOW_SKIP=1`: then it prints `SKIPPED: ...` and
/// returns false, and the caller skips.
pub fn present(path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    let message = format!(
        "{} is missing: run scripts/setup.sh to install the bundled models",
        path.display()
    );
    if std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED ({ALLOW_SKIP}=1): {message}");
        false
    } else {
        panic!("{message} (or set {ALLOW_SKIP}=1 to skip the tests that need them)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "run scripts/setup.sh to install the bundled models")]
    fn a_missing_model_fails_the_test() {
        // The variable is not set in the test environment (CI never sets it).
        assert!(std::env::var(ALLOW_SKIP).is_err());
        present(Path::new("models/no-such-model.gguf"));
    }

    #[test]
    fn a_present_model_is_present() {
        assert!(present(Path::new(env!("CARGO_MANIFEST_DIR"))));
    }
}
