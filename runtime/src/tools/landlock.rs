//! Filesystem confinement of subprocess tools with Landlock (Linux 5.13 and later).
//!
//! The ruleset is built in the server, before the fork: every filesystem right the kernel knows
//! is handled (so denied unless a rule grants it), system directories and the tool's own files
//! are readable and executable, its working directory is fully its own, and a few device files
//! can be read and written. The child then only calls `prctl(PR_SET_NO_NEW_PRIVS)` and
//! `landlock_restrict_self` on the inherited descriptor: two system calls, nothing allocated,
//! which is all that is safe between fork and exec. (This is why the system calls are made
//! here rather than through a crate that builds the ruleset in the restricted process itself.)
//! From kernel ABI 6 on, the tool is also scoped: it cannot signal processes outside its domain
//! or connect to their abstract unix sockets.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
/// Rights that apply to files (a rule on a file may grant only these).
const FILE_RIGHTS_ABI1: u64 = EXECUTE | WRITE_FILE | READ_FILE;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// Directories every tool may read and execute from: the system's programs and libraries.
const SYSTEM_DIRS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];
/// Device files every tool may read and write.
const DEVICES: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"];

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of this kernel, or why there is none; asked once.
pub fn abi() -> Result<u32, String> {
    static ABI: OnceLock<Result<u32, String>> = OnceLock::new();
    ABI.get_or_init(|| {
        // SAFETY: a version query takes no attribute and returns a number or -1.
        let version = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<RulesetAttr>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        if version > 0 {
            let version = version as u32;
            tracing::info!(abi = version, "tools run confined by Landlock");
            Ok(version)
        } else {
            let why = format!(
                "this kernel has no Landlock ({}); subprocess tools cannot be confined to \
                 their own files",
                std::io::Error::last_os_error()
            );
            tracing::warn!("{why}");
            Err(why)
        }
    })
    .clone()
}

/// Every filesystem right of ABI `abi`.
fn handled_rights(abi: u32) -> u64 {
    let mut rights = (1 << 13) - 1; // ABI 1: execute .. make_sym
    if abi >= 2 {
        rights |= 1 << 13; // refer
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    if abi >= 5 {
        rights |= IOCTL_DEV;
    }
    rights
}

/// A created ruleset, ready for [`restrict_self`] in the child.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// Read and execute access under each of `read` (files or directories; absent ones are
    /// skipped), everything under each of `own`, read and write on the [`DEVICES`].
    pub fn for_tool(read: &[PathBuf], own: &[PathBuf]) -> std::io::Result<Self> {
        let abi = abi().map_err(std::io::Error::other)?;
        let handled = handled_rights(abi);
        let attr = RulesetAttr {
            handled_access_fs: handled,
            handled_access_net: 0,
            scoped: SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL,
        };
        // ABI 1 to 3 know only the first field, 4 and 5 the first two.
        let size = match abi {
            1..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: `attr` is valid for `size` bytes, which the kernel reads.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        let ruleset = Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
        };
        let file_rights = FILE_RIGHTS_ABI1 | (handled & (TRUNCATE | IOCTL_DEV));
        let system = SYSTEM_DIRS.iter().map(PathBuf::from);
        for path in system.chain(read.iter().cloned()) {
            ruleset.allow(&path, EXECUTE | READ_FILE | READ_DIR, file_rights)?;
        }
        for device in DEVICES {
            ruleset.allow(
                Path::new(device),
                READ_FILE | WRITE_FILE | (handled & TRUNCATE),
                file_rights,
            )?;
        }
        for path in own {
            ruleset.allow(path, handled, file_rights)?;
        }
        Ok(ruleset)
    }

    /// Grants `rights` under `path` (only its file rights when it is a file); an absent path is
    /// skipped.
    fn allow(&self, path: &Path, rights: u64, file_rights: u64) -> std::io::Result<()> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let rights = if meta.is_dir() {
            rights
        } else {
            rights & file_rights
        };
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other(format!("{} has a NUL byte", path.display())))?;
        // SAFETY: `c_path` is NUL-terminated; O_PATH opens nothing but a handle.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is ours to close.
        let parent = unsafe { OwnedFd::from_raw_fd(fd) };
        let rule = PathBeneathAttr {
            allowed_access: rights,
            parent_fd: parent.as_raw_fd(),
        };
        // SAFETY: `rule` is a valid path-beneath attribute for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot allow {}: {e}", path.display()),
            ));
        }
        Ok(())
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Confines the calling process (the tool's child, between fork and exec) to the ruleset
/// `fd`. Async-signal-safe: two system calls.
pub fn restrict_self(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: prctl with these arguments only sets a flag on the calling process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a Landlock ruleset descriptor inherited from the parent.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What a tool started as `program` with `args` may read: the program (and, for
/// `PREFIX/bin/program`, all of `PREFIX`: a virtual environment's or an installation's own
/// libraries) and every argument that names an existing file or directory.
pub fn readable_paths(program: &Path, args: &[std::ffi::OsString]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let program = if program.components().count() > 1 {
        Some(program.to_path_buf())
    } else {
        // A bare name: found on PATH (the system directories are readable anyway).
        None
    };
    if let Some(program) = program {
        if let Some(prefix) = program
            .parent()
            .filter(|bin| bin.file_name().is_some_and(|n| n == "bin"))
            .and_then(Path::parent)
        {
            paths.push(prefix.to_path_buf());
        }
        paths.push(program);
    }
    paths.extend(
        args.iter()
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.exists()),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi() {
        assert_eq!(handled_rights(1), 0x1fff);
        assert_eq!(handled_rights(2), 0x3fff);
        assert_eq!(handled_rights(3), 0x7fff);
        assert_eq!(handled_rights(5), 0xffff);
    }

    #[test]
    fn a_venv_program_makes_its_prefix_readable() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool.py");
        std::fs::write(&script, "").unwrap();
        let paths = readable_paths(
            Path::new("/opt/venv/bin/python"),
            &[script.clone().into(), "-c".into(), "relative.txt".into()],
        );
        assert_eq!(
            paths,
            [
                PathBuf::from("/opt/venv"),
                PathBuf::from("/opt/venv/bin/python"),
                script
            ]
        );
        assert!(readable_paths(Path::new("python3"), &[]).is_empty());
    }
}
