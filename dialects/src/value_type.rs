use std::fmt;

/// The types of values flowing between workflow nodes, one MLIR type each (`!agent.<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    Text,
    Json,
    Vec,
    Docs,
    List,
}

impl ValueType {
    /// Every type, in the order of the per-type operand groups of templated ops.
    pub const ALL: [ValueType; 5] = [
        ValueType::Text,
        ValueType::Json,
        ValueType::Vec,
        ValueType::Docs,
        ValueType::List,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ValueType::Text => "text",
            ValueType::Json => "json",
            ValueType::Vec => "vec",
            ValueType::Docs => "docs",
            ValueType::List => "list",
        }
    }

    /// The MLIR spelling, e.g. `!agent.text`.
    pub fn mlir(self) -> String {
        format!("!agent.{}", self.name())
    }

    /// Position of this type's operand group in templated ops (see `agent.irdl.mlir`).
    pub fn group_index(self) -> usize {
        self as usize
    }

    pub fn from_name(name: &str) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
