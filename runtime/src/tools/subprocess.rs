//! Subprocess tools: an argument array run in its own process group and temporary directory,
//! JSON arguments on stdin, stdout captured up to the cap, stderr's tail kept for errors.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::failure::{self, ToolFailure};
use super::{RunnerInner, ToolSpec, landlock};

/// Bytes of stderr kept (the end of it) for the error of a failed call.
const STDERR_TAIL_BYTES: usize = 4096;
/// Read size for the tool's pipes.
const READ_CHUNK: usize = 8192;

pub async fn run(
    runner: &RunnerInner,
    spec: &ToolSpec,
    args: &Value,
) -> Result<Vec<u8>, ToolFailure> {
    let Some((program, rest)) = spec.command.split_first() else {
        return Err(ToolFailure::Misconfigured(
            "a subprocess tool needs a command".to_string(),
        ));
    };
    let workdir = tempfile::Builder::new()
        .prefix("agentc-tool-")
        .tempdir()
        .map_err(|e| ToolFailure::Spawn(format!("cannot create its working directory: {e}")))?;
    let program = resolve(&runner.base_dir, program);
    let rest: Vec<std::ffi::OsString> = rest.iter().map(|a| resolve(&runner.base_dir, a)).collect();
    let confine = spec.confine;
    // Built here, applied in the child: the tool reads only the system's programs, its own
    // files and what it declares, and writes only its working directory and what it declares.
    let ruleset = if confine {
        let declared = |paths: &[String]| -> Vec<std::path::PathBuf> {
            paths.iter().map(|p| runner.base_dir.join(p)).collect()
        };
        let mut readable = landlock::readable_paths(Path::new(&program), &rest);
        readable.extend(declared(&spec.reads));
        let mut writable = declared(&spec.writes);
        writable.push(workdir.path().to_path_buf());
        let ruleset = landlock::Ruleset::for_tool(&readable, &writable).map_err(|e| {
            ToolFailure::Misconfigured(format!(
                "cannot confine the tool to its files: {e}; declare `confine: false` on the \
                 tool to run it unconfined"
            ))
        })?;
        Some(ruleset)
    } else {
        None
    };
    let ruleset_fd = ruleset.as_ref().map(landlock::Ruleset::raw_fd);
    let mut cmd = Command::new(&program);
    cmd.args(&rest)
        .current_dir(workdir.path())
        .env_clear()
        .envs(runner.env.iter().map(|(k, v)| (k, v)))
        .env("HOME", workdir.path())
        .env("TMPDIR", workdir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let cpu_seconds = spec.timeout_ms.div_ceil(1000) + 1;
    let isolate = !spec.network;
    // What an unprivileged child writes to map its own ids in a new user namespace, prepared
    // here: the child may not allocate.
    let (uid_map, gid_map) = unsafe {
        // SAFETY: getuid and getgid cannot fail.
        (
            format!("{0} {0} 1\n", libc::getuid()),
            format!("{0} {0} 1\n", libc::getgid()),
        )
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes system calls
    // (setrlimit, unshare, open/write/close on /proc/self, prctl, landlock_restrict_self, fork,
    // waitpid, _exit) with memory prepared before the fork; it allocates nothing and touches no
    // lock.
    unsafe {
        cmd.pre_exec(move || {
            limit_resources(cpu_seconds)?;
            enter_namespaces(isolate, confine, uid_map.as_bytes(), gid_map.as_bytes())?;
            if let Some(fd) = ruleset_fd {
                landlock::restrict_self(fd)?;
            }
            if confine {
                become_namespace_init()?;
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(ruleset);
    let mut child = spawned
        .map_err(|e| ToolFailure::Spawn(format!("{}: {e}", Path::new(&program).display())))?;
    let pid = child.id();
    let input = serde_json::to_vec(args).unwrap_or_default();
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let limit = spec.max_output_bytes;

    let io = async {
        let write = async {
            if let Some(mut stdin) = stdin {
                // A tool that does not read its arguments closes the pipe: not an error.
                let _ = stdin.write_all(&input).await;
            }
            Ok::<(), ToolFailure>(())
        };
        let read_out = read_capped(stdout, limit);
        let read_err = async { Ok::<Vec<u8>, ToolFailure>(read_tail(stderr).await) };
        tokio::try_join!(write, read_out, read_err)
    };
    let outcome = tokio::time::timeout(spec.timeout(), async {
        let (_, out, err) = io.await?;
        let status = child
            .wait()
            .await
            .map_err(|e| ToolFailure::Spawn(e.to_string()))?;
        Ok::<_, ToolFailure>((status, out, err))
    })
    .await;
    let (status, out, err) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(failure)) => {
            kill_group(pid, &spec.name, &failure);
            let _ = child.wait().await;
            return Err(failure);
        }
        Err(_elapsed) => {
            let failure = ToolFailure::Timeout {
                ms: spec.timeout_ms,
            };
            kill_group(pid, &spec.name, &failure);
            let _ = child.wait().await;
            return Err(failure);
        }
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err);
        let detail = if stderr.trim().is_empty() {
            failure::tail(&String::from_utf8_lossy(&out))
        } else {
            failure::tail(&stderr)
        };
        // The protocol's refusal: a normal exit with `{"error": ...}` on stdout.
        let answered = status.code().is_some()
            && serde_json::from_slice::<serde_json::Value>(&out)
                .is_ok_and(|v| v.get("error").is_some());
        return Err(ToolFailure::Exit {
            status: describe(status),
            detail,
            answered,
        });
    }
    Ok(out)
}

/// Address space a tool process may map (its memory, with room for an interpreter's
/// reservations); more fails its allocations.
pub const TOOL_MEMORY_BYTES: u64 = 2 << 30;
/// Largest file a tool may write; writing more kills it (SIGXFSZ).
pub const TOOL_FILE_BYTES: u64 = 64 << 20;

/// The limits every tool process runs under: memory, file size, CPU time (the call's timeout
/// rounded up, plus a second: a busy loop dies even if the timer is late), no core dumps.
fn limit_resources(cpu_seconds: u64) -> std::io::Result<()> {
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: `limit` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    set(libc::RLIMIT_AS, TOOL_MEMORY_BYTES)?;
    set(libc::RLIMIT_FSIZE, TOOL_FILE_BYTES)?;
    set(libc::RLIMIT_CPU, cpu_seconds)?;
    set(libc::RLIMIT_CORE, 0)
}

/// Moves the calling (child) process into namespaces of its own: when `confine`, a PID
/// namespace (its next child is the namespace's init, see [`become_namespace_init`]), and when
/// `no_network`, a network namespace with no interfaces but a loopback that is down, so it can
/// reach nothing. Root unshares them directly; an unprivileged user goes through a user
/// namespace that maps only its own ids. Where neither is allowed the call fails with the
/// reason.
fn enter_namespaces(
    no_network: bool,
    confine: bool,
    uid_map: &[u8],
    gid_map: &[u8],
) -> std::io::Result<()> {
    let flags = if confine { libc::CLONE_NEWPID } else { 0 }
        | if no_network { libc::CLONE_NEWNET } else { 0 };
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | flags) } != 0 {
        let error = std::io::Error::last_os_error();
        let what = if no_network {
            "cut the tool off the network or give it a process namespace"
        } else {
            "give the tool a process namespace"
        };
        return Err(std::io::Error::new(
            error.kind(),
            format!(
                "cannot {what} ({error}); this needs root or unprivileged user namespaces (or \
                 `network: true` and `confine: false` on the tool)"
            ),
        ));
    }
    write_proc(c"/proc/self/setgroups", b"deny")?;
    write_proc(c"/proc/self/uid_map", uid_map)?;
    write_proc(c"/proc/self/gid_map", gid_map)
}

/// Forks the tool as the init of its PID namespace; this process waits for it and leaves with
/// its status, so the server sees the tool's exit. When the init ends (it exits, or the timeout
/// kills the process group both are in), the kernel kills every process left in the namespace:
/// no descendant outlives the call, not even one started with `setsid`. Returns only in the
/// tool; async-signal-safe.
fn become_namespace_init() -> std::io::Result<()> {
    // SAFETY: fork in a single-threaded child between fork and exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        return Ok(());
    }
    let mut status = 0;
    // SAFETY: close_range, close, waitpid, signal, kill and _exit are async-signal-safe and take
    // plain values.
    unsafe {
        // This process never execs, so descriptors marked close-on-exec stay open in it: other
        // tools' pipes the server had open at the fork among them, whose readers would then
        // never see end-of-file. It needs none of them, its own stdio included.
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
        while libc::waitpid(pid, &mut status, 0) != pid {
            if *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
        }
        libc::_exit(127)
    }
}

fn write_proc(path: &std::ffi::CStr, text: &[u8]) -> std::io::Result<()> {
    // SAFETY: `path` is NUL-terminated and `text` valid for its length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
        if written != text.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `arg` made absolute when it is a relative path with a `/` naming something under `base`.
fn resolve(base: &Path, arg: &str) -> std::ffi::OsString {
    let path = Path::new(arg);
    if arg.contains('/') && !arg.starts_with('-') && path.is_relative() && base.join(path).exists()
    {
        base.join(path).into_os_string()
    } else {
        arg.into()
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Reads all of `pipe`, failing as soon as it holds more than `limit` bytes.
async fn read_capped(
    pipe: Option<impl AsyncRead + Unpin>,
    limit: u64,
) -> Result<Vec<u8>, ToolFailure> {
    let mut out = Vec::new();
    let Some(mut pipe) = pipe else { return Ok(out) };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = pipe
            .read(&mut buf)
            .await
            .map_err(|e| ToolFailure::Spawn(format!("cannot read its output: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() as u64 > limit {
            return Err(ToolFailure::OutputTooLarge { limit });
        }
    }
}

/// Reads all of `pipe`, keeping its last [`STDERR_TAIL_BYTES`] bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buf = vec![0u8; READ_CHUNK];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > STDERR_TAIL_BYTES {
            kept.drain(..kept.len() - STDERR_TAIL_BYTES);
        }
    }
    kept
}

/// Kills the tool's whole process group (it and anything it started).
fn kill_group(pid: Option<u32>, tool: &str, why: &ToolFailure) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    tracing::warn!(tool, pgid = pid, reason = %why, "killing the tool's process group");
    // SAFETY: killpg only sends a signal. `pid` is the id of the child we spawned as the leader
    // of a new process group (`process_group(0)`) and have not reaped yet, so the group id still
    // names that group and not a reused id.
    let rc = unsafe { libc::killpg(pid, libc::SIGKILL) };
    if rc != 0 {
        tracing::warn!(tool, pgid = pid, error = %std::io::Error::last_os_error(), "killpg failed");
    }
}
