//! Loading the dialects into a melior context, and parsing and verifying modules.

use std::cell::RefCell;
use std::rc::Rc;

use melior::Context;
use melior::dialect::DialectRegistry;
use melior::ir::operation::OperationLike;
use melior::ir::{Location, Module};
use melior::utility::{load_irdl_dialects, register_all_dialects};

use crate::{AGENT_IRDL, EXEC_IRDL, Error, Result};

/// A melior context with the builtin, func and IRDL dialects and every agentc dialect loaded.
pub fn new_context() -> Result<Context> {
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    load_dialect(&context, "agent", AGENT_IRDL)?;
    load_dialect(&context, "exec", EXEC_IRDL)?;
    Ok(context)
}

fn load_dialect(context: &Context, dialect: &'static str, irdl: &str) -> Result<()> {
    let diagnostics = capture_diagnostics(context, || {
        let module = Module::parse(context, irdl);
        module.map(|module| load_irdl_dialects(&module))
    });
    match diagnostics.0 {
        Some(true) => Ok(()),
        _ => Err(Error::DialectLoad {
            dialect,
            details: diagnostics.1.join("\n"),
        }),
    }
}

/// Runs `f` with a diagnostic handler attached and returns its result with every diagnostic
/// MLIR reported meanwhile (location and message, one string each).
pub fn capture_diagnostics<T>(context: &Context, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let messages = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&messages);
    let id = context.attach_diagnostic_handler(move |diagnostic| {
        let mut text = format!("{}: {}", diagnostic.location(), diagnostic);
        for index in 0..diagnostic.note_count() {
            if let Ok(note) = diagnostic.note(index) {
                text.push_str(&format!("\n  note: {note}"));
            }
        }
        sink.borrow_mut().push(text);
        true
    });
    let result = f();
    context.detach_diagnostic_handler(id);
    let messages = messages.take();
    (result, messages)
}

/// Verifies a module, returning MLIR's own diagnostics on failure.
pub fn verify(context: &Context, module: &Module) -> Result<()> {
    let (ok, messages) = capture_diagnostics(context, || module.as_operation().verify());
    if ok {
        Ok(())
    } else {
        Err(Error::Verify(messages.join("\n")))
    }
}

/// Parses and verifies MLIR text (a plan or an emitted module) in a context from [`new_context`].
pub fn parse_module<'c>(context: &'c Context, source: &str) -> Result<Module<'c>> {
    let (module, messages) = capture_diagnostics(context, || Module::parse(context, source));
    let module = module.ok_or_else(|| Error::Parse(messages.join("\n")))?;
    verify(context, &module)?;
    Ok(module)
}

/// A location for a node of a workflow file (1-based line and column).
pub fn file_location<'c>(
    context: &'c Context,
    file: &str,
    line: usize,
    col: usize,
) -> Location<'c> {
    Location::new(context, file, line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
module {
  func.func @wf() {
    %0 = "agent.input"() {max_len = 8 : i64, name = "q", node = "q"} : () -> !agent.text
    %1 = "agent.render"(%0) {node = "r", operandSegmentSizes = array<i32: 1, 0, 0, 0, 0>, template = "Q: ${0}"} : (!agent.text) -> !agent.text
    "agent.output"(%1) {name = "out"} : (!agent.text) -> ()
    return
  }
}
"#;

    #[test]
    fn agent_dialect_loads_and_verifies_a_module() {
        let context = new_context().unwrap();
        let module = parse_module(&context, SAMPLE).unwrap();
        let printed = module.as_operation().to_string();
        assert!(printed.contains(r#""agent.render"(%0)"#), "{printed}");
    }

    #[test]
    fn verifier_rejects_a_wrong_attribute_kind_with_mlir_message() {
        let context = new_context().unwrap();
        let bad = SAMPLE.replace("max_len = 8 : i64", "max_len = \"eight\"");
        let err = parse_module(&context, &bad).unwrap_err().to_string();
        assert!(
            err.contains("expected base attribute 'builtin.integer' but got 'builtin.string'"),
            "{err}"
        );
    }

    #[test]
    fn exec_dialect_loads_and_verifies_a_module() {
        let context = new_context().unwrap();
        let placed = r#"(device = "cpu0", predicted_ms = 0.5 : f64, usd = 0.0 : f64)"#;
        let src = format!(
            r#"module {{
  "exec.kv_prefix"() {{name = "p0", model = "chat", tokens = 4 : i64, text = "Q:", consumers = ["a"], uses = 2 : i64, {p}}} : () -> ()
  func.func @wf() {{
    %0 = "exec.input"() {{node = "inputs.q", name = "q", max_len = 8 : i64, {p}}} : () -> !exec.text
    %1 = "exec.tokenize"(%0) {{node = "a", model = "chat", est_tokens = 8 : i64, {p}}} : (!exec.text) -> !exec.tokens
    %2 = "exec.prefill"(%1) {{node = "a", model = "chat", est_tokens = 8 : i64, prefix = "p0", prefix_tokens = 4 : i64, batch = "", {p}}} : (!exec.tokens) -> !exec.kv
    %3 = "exec.transfer"(%2) {{node = "a", from = "gpu0", bytes = 4096 : i64, {p}}} : (!exec.kv) -> !exec.kv
    return
  }}
}}"#,
            p = &placed[1..placed.len() - 1]
        );
        parse_module(&context, &src).unwrap();
        let bad = src.replace("bytes = 4096 : i64, ", "");
        let err = parse_module(&context, &bad).unwrap_err().to_string();
        assert!(
            err.contains("attribute \"bytes\" is expected but not provided"),
            "{err}"
        );
    }

    #[test]
    fn verifier_rejects_an_unknown_agent_op() {
        let context = new_context().unwrap();
        let bad = SAMPLE.replace("agent.render", "agent.rendr");
        let err = parse_module(&context, &bad).unwrap_err().to_string();
        assert!(err.contains("agent.rendr"), "{err}");
    }
}
