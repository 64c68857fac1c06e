//! `agentc profile`: measures this machine (or one of its CUDA devices) and writes a device
//! profile that `agentc build --profile` uses instead of datasheet figures.

use std::path::PathBuf;
use std::process::ExitCode;

use agentc_kernels::{CudaDevice, Device, DeviceSpec};
use agentc_placement::profile::{MeasuredFlops, OpTiming, PROFILE_FORMAT_VERSION, StepTiming};
use agentc_placement::{DeviceProfile, OpKind};
use agentc_runtime::profile::{
    cuda_profile, engine_timings, matmul_throughput, memory_bandwidth_gbs, serving_step_timing,
};
use agentc_runtime::{Engine, EngineOptions};
use anyhow::bail;
use clap::Args;

use super::write_output;

/// The catalog type a CPU profile is for unless `--device-type` says otherwise.
const DEFAULT_CPU_TYPE: &str = "dev-2core";

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// What to measure: `cpu`, or a CUDA device `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Catalog device type measured (see `compiler/placement/catalog/hardware.yaml`); default
    /// `dev-2core` for the CPU, required for a CUDA device (e.g. `h100-sxm`).
    #[arg(long)]
    pub device_type: Option<String>,
    /// GGUF model whose prefill and decode to time (skipped if the file is absent).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
    /// Write the profile here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn profile(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    match Device::open(args.device)? {
        Device::Cpu => profile_cpu(args),
        Device::Cuda(dev) => profile_cuda(args, &dev),
    }
}

fn profile_cpu(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let device_type = args
        .device_type
        .clone()
        .unwrap_or_else(|| DEFAULT_CPU_TYPE.to_string());
    eprintln!("measuring memory bandwidth ...");
    let bandwidth = memory_bandwidth_gbs(args.threads)?;
    eprintln!("  {bandwidth:.1} GB/s");
    eprintln!("measuring matmul throughput ...");
    let (f32_gflops, int8_gops) = matmul_throughput(args.threads)?;
    eprintln!("  f32 {f32_gflops:.1} GFLOP/s, int8 {int8_gops:.1} GOP/s");
    let mut op_timings = Vec::new();
    let mut step_timings = Vec::new();
    if args.model.exists() {
        eprintln!("timing prefill and decode of {} ...", args.model.display());
        let engine = Engine::load_with(
            &args.model,
            &EngineOptions {
                threads: args.threads,
                ..EngineOptions::default()
            },
        )?;
        let (prefill, decode) = engine_timings(&engine)?;
        eprintln!("timing batch steps of the serving engine (1 to 8 sequences) ...");
        let (step, samples) = serving_step_timing(std::sync::Arc::new(engine))?;
        for s in &samples {
            eprintln!(
                "  {} steps, {} prompt + {} decode ({} sampled) tokens, {} attention pairs: {:.1} ms",
                s.steps,
                s.prefill_tokens,
                s.decode_tokens,
                s.sampled_tokens,
                s.attention_pairs,
                s.seconds * 1e3
            );
        }
        eprintln!(
            "  step: {:.3} ms + {:.3} ms/prompt token + {:.3} ms/decode token + {:.3} us/attention pair + {:.3} ms/sampled token",
            step.fixed_s * 1e3,
            step.per_prefill_token_s * 1e3,
            step.per_decode_token_s * 1e3,
            step.per_attention_pair_s * 1e6,
            step.per_sampled_token_s * 1e3
        );
        // Named by file stem: the compiler names a model's shape the same way.
        let model = args
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        for (kind, t) in [(OpKind::Prefill, prefill), (OpKind::Decode, decode)] {
            eprintln!(
                "  {kind:?}: {:.3} ms + {:.3} ms/token",
                t.fixed_s * 1e3,
                t.per_token_s * 1e3
            );
            op_timings.push(OpTiming {
                kind,
                model: model.clone(),
                fixed_s: t.fixed_s,
                per_token_s: t.per_token_s,
                samples: t.samples,
            });
        }
        step_timings.push(StepTiming {
            model: model.clone(),
            fixed_s: step.fixed_s,
            per_prefill_token_s: step.per_prefill_token_s,
            per_decode_token_s: step.per_decode_token_s,
            per_attention_pair_s: step.per_attention_pair_s,
            per_sampled_token_s: step.per_sampled_token_s,
            samples: step.samples,
        });
    } else {
        eprintln!(
            "note: {} not found; profile has no per-op timings (run scripts/setup.sh)",
            args.model.display()
        );
    }
    let profile = DeviceProfile {
        format_version: PROFILE_FORMAT_VERSION,
        device_type,
        measured_at: now_rfc3339(),
        host: host_name(),
        memory_bandwidth_gbs: bandwidth,
        matmul_gflops: MeasuredFlops {
            fp32: f32_gflops,
            fp16: None,
            int8: Some(int8_gops),
        },
        op_overhead_us: None,
        op_timings,
        step_timings,
    };
    write_output(args.output.as_deref(), &(profile.to_json()? + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Measures a CUDA device with the CUDA kernels. The profile has the CPU path's format:
/// bandwidth is a device-to-device copy; `fp32` is `matmul_f16`'s rate (f16 weights, f32
/// arithmetic: there is no f32-weight kernel) and `int8` is `matmul_q4_1`'s (the quantized-weights
/// path the cost model prices as int8, as the CPU path's Q8_0 rate is); `op_overhead_us` is the
/// device time of a one-element launch. Per-kernel timings at a decode step's shapes go to
/// standard error; prefill/decode op timings come once the engine runs on CUDA.
fn profile_cuda(args: ProfileArgs, dev: &CudaDevice) -> anyhow::Result<ExitCode> {
    let Some(device_type) = args.device_type else {
        bail!(
            "--device-type is required with --device {}: name the catalog type of this GPU \
             (e.g. h100-sxm; see compiler/placement/catalog/hardware.yaml)",
            args.device
        );
    };
    let (major, minor) = dev.compute_capability()?;
    eprintln!(
        "{}: {} (compute {major}.{minor}); compiling kernels and measuring ...",
        args.device,
        dev.name()?
    );
    let p = cuda_profile(dev)?;
    eprintln!("  copy bandwidth {:.1} GB/s", p.bandwidth_gbs);
    eprintln!(
        "  matmul 4096x4096 x 128 tokens: f16 {:.1} GFLOP/s, q4_1 {:.1} GFLOP/s",
        p.f16_gflops, p.q4_1_gflops
    );
    eprintln!("  launch overhead {:.2} us", p.launch_overhead_us);
    eprintln!("  kernels at SmolLM2-135M decode shapes:");
    for k in &p.kernels {
        eprintln!(
            "    {:<20} {:<40} {:>9.2} us",
            k.kernel,
            k.shape,
            k.seconds * 1e6
        );
    }
    let profile = DeviceProfile {
        format_version: PROFILE_FORMAT_VERSION,
        device_type,
        measured_at: now_rfc3339(),
        host: host_name(),
        memory_bandwidth_gbs: p.bandwidth_gbs,
        matmul_gflops: MeasuredFlops {
            fp32: p.f16_gflops,
            fp16: None,
            int8: Some(p.q4_1_gflops),
        },
        op_overhead_us: Some(p.launch_overhead_us),
        op_timings: Vec::new(),
        step_timings: Vec::new(),
    };
    write_output(args.output.as_deref(), &(profile.to_json()? + "\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
}

/// UTC now as RFC 3339, without a date crate: days since the epoch to a civil date.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
