//! The few IR mutations melior does not wrap: use lists and erasing ops.

use melior::ir::operation::OperationRef;
use melior::ir::{Value, ValueLike};

/// Whether a value has any use.
pub fn has_uses(v: Value<'_, '_>) -> bool {
    // SAFETY: `v` is a live value of a live module; reading its use list does not mutate.
    unsafe { !mlir_sys::mlirOpOperandIsNull(mlir_sys::mlirValueGetFirstUse(v.to_raw())) }
}

/// Unlinks `op` from its block and destroys it. Its results must have no uses left, and no
/// reference to it may be used afterwards.
pub fn erase(op: OperationRef<'_, '_>) {
    let raw = op.to_raw();
    // SAFETY: `op` is a live op inside a block; removing it from the block hands ownership to
    // us, and destroying it frees it. Callers guarantee its results are unused.
    unsafe {
        mlir_sys::mlirOperationRemoveFromParent(raw);
        mlir_sys::mlirOperationDestroy(raw);
    }
}

/// Sets (or replaces) an attribute of `op`.
pub fn set_attribute<'c>(op: OperationRef<'c, '_>, name: &str, value: melior::ir::Attribute<'c>) {
    use melior::ir::operation::{OperationMutLike, OperationRefMut};
    // SAFETY: `op` is a live op; a mutable view of it is used only for this one call, while no
    // other reference reads its attributes.
    let mut op = unsafe { OperationRefMut::from_raw(op.to_raw()) };
    op.set_attribute(name, value);
}
