//! The JSON Schema of workflow files, generated from the syntax tree's types.

use crate::frontend::ast::Workflow;

/// The schema as pretty-printed JSON, for editors (`# yaml-language-server: $schema=...`).
pub fn workflow_schema() -> String {
    let schema = schemars::schema_for!(Workflow);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::workflow_schema;
    use crate::frontend::node_keys::*;
    use crate::frontend::*;

    fn props(schema: &Value) -> BTreeSet<String> {
        schema["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    /// The schema editors see lists exactly the keys the decoder accepts, at every level.
    #[test]
    fn schema_matches_decoder_keys() {
        let schema: Value = serde_json::from_str(&workflow_schema()).unwrap();
        let defs = &schema["$defs"];
        assert_eq!(props(&schema), set(WORKFLOW_KEYS));
        for (def, keys) in [
            ("InputDecl", INPUT_KEYS),
            ("ModelDecl", MODEL_KEYS),
            ("ToolDecl", TOOL_KEYS),
            ("ToolArg", TOOL_ARG_KEYS),
            ("IndexDecl", INDEX_KEYS),
            ("Sla", SLA_KEYS),
            ("BranchCase", CASE_KEYS),
            ("BranchArm", ARM_KEYS),
            ("Message", MESSAGE_KEYS),
        ] {
            assert_eq!(props(&defs[def]), set(keys), "{def}");
        }
        for (def, keys) in [
            ("LlmNode", LLM_KEYS),
            ("EmbedNode", EMBED_KEYS),
            ("RetrieveNode", RETRIEVE_KEYS),
            ("ToolNode", TOOL_NODE_KEYS),
            ("RenderNode", RENDER_KEYS),
            ("JsonNode", JSON_KEYS),
            ("MapNode", MAP_KEYS),
            ("BranchNode", BRANCH_KEYS),
            ("LoopNode", LOOP_KEYS),
        ] {
            let mut p = props(&defs[def]);
            p.extend(["id".to_string(), "kind".to_string()]);
            assert_eq!(p, set(keys), "{def}");
        }
        let kinds: BTreeSet<String> = defs["Node"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["kind"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(kinds, set(NODE_KINDS));
    }
}
