//! The plan the executor runs: read by the plan contract crate ([`agentc_plan::program`]), so
//! that the compiler's writer and this reader share their types and attribute names.

pub use agentc_plan::program::{
    Function, InputDecl, Op, OpKind, PlanError, Program, ValueId, workflow_declarations,
};
pub use agentc_plan::{Manifest, Plan};

impl From<PlanError> for crate::Error {
    fn from(e: PlanError) -> Self {
        crate::Error::Plan {
            path: e.path,
            message: e.message,
        }
    }
}
