//! Attribute names of the `agent` and `exec` dialects, spelled once: the emitter, the passes and
//! the plan reader all name attributes through these constants. The IRDL files
//! (`dialects/*.irdl.mlir`) declare the same names, and a unit test checks that every constant
//! here is declared there.

/// Workflow-level attributes of the main function.
pub mod workflow {
    /// The SLA: a dictionary of [`crate::decl::Sla`].
    pub const SLA: &str = "agent.sla";
    /// The models: an array of [`crate::decl::ModelSpec`] dictionaries.
    pub const MODELS: &str = "agent.models";
    /// The tools: an array of [`crate::decl::ToolSpec`] dictionaries.
    pub const TOOLS: &str = "agent.tools";
    /// The vector indexes: an array of [`crate::decl::IndexSpec`] dictionaries.
    pub const INDEXES: &str = "agent.indexes";
    /// The workflow's description, when it has one.
    pub const DESCRIPTION: &str = "agent.description";
    /// Written by the placement pass: feasible, predicted latency, $ per run, method, gap,
    /// critical path (or why nothing is feasible).
    pub const PLACEMENT: &str = "exec.placement";
    /// Written by the placement pass: per device type able to run everything, its cost and
    /// latency.
    pub const HOMOGENEOUS: &str = "exec.homogeneous";
}

/// Builtin attributes of `func.func`.
pub mod func {
    pub const SYM_NAME: &str = "sym_name";
    pub const SYM_VISIBILITY: &str = "sym_visibility";
}

// Attributes of ops, in the order the IRDL files first use them.
pub const NODE: &str = "node";
pub const NAME: &str = "name";
pub const MAX_LEN: &str = "max_len";
pub const DEVICE: &str = "device";
pub const PREDICTED_MS: &str = "predicted_ms";
pub const USD: &str = "usd";
pub const TEMPLATE: &str = "template";
pub const MESSAGES: &str = "messages";
pub const MODEL: &str = "model";
pub const EST_TOKENS: &str = "est_tokens";
pub const TOKENS: &str = "tokens";
pub const TEXT: &str = "text";
pub const CONSUMERS: &str = "consumers";
pub const USES: &str = "uses";
pub const PREFIX: &str = "prefix";
pub const PREFIX_TOKENS: &str = "prefix_tokens";
pub const BATCH: &str = "batch";
pub const MAX_TOKENS: &str = "max_tokens";
pub const TEMPERATURE: &str = "temperature";
pub const TOP_P: &str = "top_p";
pub const TOP_K: &str = "top_k";
pub const SEED: &str = "seed";
pub const STOP: &str = "stop";
pub const CONSTRAINT: &str = "constraint";
pub const OUTPUT: &str = "output";
pub const INDEX: &str = "index";
pub const K: &str = "k";
pub const TOOL: &str = "tool";
pub const ARGS: &str = "args";
pub const MODE: &str = "mode";
pub const PATH: &str = "path";
pub const FIELDS: &str = "fields";
pub const FROM: &str = "from";
pub const BYTES: &str = "bytes";
pub const BODY: &str = "body";
pub const ITEM: &str = "item";
pub const MAX_CONCURRENCY: &str = "max_concurrency";
pub const CONDITIONS: &str = "conditions";
pub const CASES: &str = "cases";
pub const DEFAULT: &str = "default";
pub const MAX_ITERS: &str = "max_iters";
pub const CARRY: &str = "carry";
pub const CARRY_OPERANDS: &str = "carry_operands";
pub const UNTIL: &str = "until";

/// Values of `mode` on `agent.json_op` / `exec.json_op`.
pub mod json_mode {
    pub const EXTRACT: &str = "extract";
    pub const OBJECT: &str = "object";
}

/// Values of `mode` on `agent.llm`: one prompt sent as is, or chat messages.
pub mod llm_mode {
    pub const PROMPT: &str = "prompt";
    pub const CHAT: &str = "chat";
}

/// Keys of each entry of `messages` (`agent.llm`, `exec.render`).
pub mod message {
    pub const ROLE: &str = "role";
    pub const CONTENT: &str = "content";
}

/// Values of `output` on `exec.detokenize` (and `agent.llm`).
pub mod output_format {
    pub const JSON: &str = "json";
    pub const TEXT: &str = "text";
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP_ATTRIBUTES: [&str; 44] = [
        NODE,
        NAME,
        MAX_LEN,
        DEVICE,
        PREDICTED_MS,
        USD,
        TEMPLATE,
        MESSAGES,
        MODEL,
        EST_TOKENS,
        TOKENS,
        TEXT,
        CONSUMERS,
        USES,
        PREFIX,
        PREFIX_TOKENS,
        BATCH,
        MAX_TOKENS,
        TEMPERATURE,
        TOP_P,
        TOP_K,
        SEED,
        STOP,
        CONSTRAINT,
        OUTPUT,
        INDEX,
        K,
        TOOL,
        ARGS,
        MODE,
        PATH,
        FIELDS,
        FROM,
        BYTES,
        BODY,
        ITEM,
        MAX_CONCURRENCY,
        CONDITIONS,
        CASES,
        DEFAULT,
        MAX_ITERS,
        CARRY,
        CARRY_OPERANDS,
        UNTIL,
    ];

    #[test]
    fn every_op_attribute_is_declared_in_the_irdl() {
        let irdl = format!("{}{}", crate::AGENT_IRDL, crate::EXEC_IRDL);
        for name in OP_ATTRIBUTES {
            assert!(
                irdl.contains(&format!("\"{name}\" = %")),
                "`{name}` is not an attribute of any op in the IRDL files"
            );
        }
    }
}
