//! The JSON Schema of workflow files, generated from the syntax tree's types.

use crate::frontend::ast::Workflow;

/// The schema as pretty-printed JSON, for editors (`# yaml-language-server: $schema=...`).
pub fn workflow_schema() -> String {
    let schema = schemars::schema_for!(Workflow);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
