//! The CUDA C sources of the kernels (`kernels/cuda/*.cu`, embedded with `include_str!`), which
//! kernel lives in which module, and the NVRTC options they are compiled with. Compiled in every
//! build, with or without the `cuda` feature, so these facts are tested without a GPU.
//!
//! NVRTC compiles each module as `common.cu` followed by the module's file: there is no
//! `#include` (NVRTC gets no CUDA headers from us) and the launch constants of
//! [`crate::cuda_launch`] are passed as `-D` options, so Rust and CUDA share one value.

use crate::cuda_launch::{ATTN_MAX_HEAD_DIM, ATTN_WARPS, MATMUL_WARPS};

/// Helpers every module starts with (f16 decoding, warp and block reductions).
pub const COMMON_SOURCE: &str = include_str!("../cuda/common.cu");

/// One NVRTC program: a `.cu` file and the kernels (`extern "C" __global__`) it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaModuleSource {
    /// The file name under `kernels/cuda/`.
    pub file: &'static str,
    /// The file's text.
    pub source: &'static str,
    /// The kernels it defines, named `{op}_{dtype}`.
    pub kernels: &'static [&'static str],
}

/// Every module, in the order [`module_index`] numbers them.
pub const CUDA_MODULES: &[CudaModuleSource] = &[
    CudaModuleSource {
        file: "matmul.cu",
        source: include_str!("../cuda/matmul.cu"),
        kernels: &["matmul_q4_0", "matmul_q4_1", "matmul_q8_0", "matmul_f16"],
    },
    CudaModuleSource {
        file: "ops.cu",
        source: include_str!("../cuda/ops.cu"),
        kernels: &[
            "rms_norm_f32",
            "silu_mul_f32",
            "softmax_f32",
            "rope_f32",
            "copy_f32",
        ],
    },
    CudaModuleSource {
        file: "attention.cu",
        source: include_str!("../cuda/attention.cu"),
        kernels: &["attention_paged_f32"],
    },
    CudaModuleSource {
        file: "kv.cu",
        source: include_str!("../cuda/kv.cu"),
        kernels: &["kv_block_copy_f32"],
    },
];

/// Index in [`CUDA_MODULES`] of the module defining `kernel`.
pub fn module_index(kernel: &str) -> Option<usize> {
    CUDA_MODULES
        .iter()
        .position(|m| m.kernels.contains(&kernel))
}

/// The full program text NVRTC compiles for `module`: the common helpers, then the file.
pub fn program_source(module: &CudaModuleSource) -> String {
    format!(
        "// ---- common.cu ----\n{COMMON_SOURCE}\n// ---- {} ----\n{}",
        module.file, module.source
    )
}

/// The `-D` options shared by every module (launch constants the kernels index with).
pub fn define_options() -> Vec<String> {
    vec![
        format!("-DMATMUL_WARPS={MATMUL_WARPS}u"),
        format!("-DATTN_WARPS={ATTN_WARPS}u"),
        format!("-DATTN_MAX_HEAD_DIM={ATTN_MAX_HEAD_DIM}u"),
    ]
}

/// The `--gpu-architecture` option for a device of compute capability `major.minor`.
pub fn arch_option(major: u32, minor: u32) -> String {
    format!("--gpu-architecture=compute_{major}{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a source defines with `extern "C" __global__ void NAME(` or the matmul macro.
    fn defined_kernels(source: &str) -> Vec<String> {
        let mut names = Vec::new();
        for (marker, end) in [("__global__ void ", '('), ("\nMATMUL_BLOCKS(", ',')] {
            for (at, _) in source.match_indices(marker) {
                let rest = &source[at + marker.len()..];
                let name = rest[..rest.find(end).unwrap_or(0)].trim();
                // The macro's own definition declares `NAME`, not a kernel.
                if name != "NAME" {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        names
    }

    #[test]
    fn every_listed_kernel_is_defined_in_its_file_and_nothing_else() {
        for m in CUDA_MODULES {
            let mut listed: Vec<String> = m.kernels.iter().map(|k| k.to_string()).collect();
            listed.sort();
            assert_eq!(defined_kernels(m.source), listed, "{}", m.file);
        }
        assert!(defined_kernels(COMMON_SOURCE).is_empty());
    }

    #[test]
    fn kernel_names_are_op_dtype_and_unique() {
        let all: Vec<&str> = CUDA_MODULES
            .iter()
            .flat_map(|m| m.kernels)
            .copied()
            .collect();
        for k in &all {
            let dtype = k.rsplit('_').next().unwrap_or("");
            let known = ["f32", "f16"].contains(&dtype)
                || ["_q4_0", "_q4_1", "_q8_0"].iter().any(|s| k.ends_with(s));
            assert!(known, "{k} does not end in a dtype");
            assert_eq!(all.iter().filter(|o| *o == k).count(), 1, "{k} twice");
            assert!(CUDA_MODULES[module_index(k).unwrap()].kernels.contains(k));
        }
        assert_eq!(module_index("matmul_q4_k"), None);
    }

    #[test]
    fn sources_need_no_headers_and_get_every_constant_they_use() {
        let defines = define_options();
        for m in CUDA_MODULES {
            let program = program_source(m);
            // NVRTC gets no headers, so no #include and no math.h INFINITY (-inf is `NEG_INF`,
            // defined in common.cu).
            let mut code = program
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"));
            assert!(
                code.all(|l| !l.contains("#include") && !l.contains("INFINITY")),
                "{}",
                m.file
            );
            for constant in ["MATMUL_WARPS", "ATTN_WARPS", "ATTN_MAX_HEAD_DIM"] {
                if program.contains(constant) {
                    assert!(
                        defines
                            .iter()
                            .any(|d| d.starts_with(&format!("-D{constant}="))),
                        "{}: {constant} is not defined",
                        m.file
                    );
                }
            }
        }
        assert_eq!(arch_option(9, 0), "--gpu-architecture=compute_90");
    }
}
