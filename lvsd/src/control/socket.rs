//! The control socket on disk: its directory, its mode and group, stale files.
//!
//! Invariants:
//! - The directory is created with mode 0755 if missing (its parent must exist) and then
//!   checked without following symlinks: it must be a real directory, owned by root or by
//!   lvsd's effective user, and not writable by group or others — otherwise someone else
//!   could swap the socket for their own.
//! - An existing file at the socket path is removed only if it is a socket that nobody
//!   answers on (stale, from a crashed lvsd); a live socket means another daemon runs there
//!   and is an error, and anything else is an error too.
//! - The socket never exists at its final path with a mode other than the configured one:
//!   it is bound under a temporary name, given its mode (and group), then renamed into
//!   place.
//! - [`BoundSocket::remove`] deletes the path only while it is still the socket lvsd bound
//!   (same device and inode).

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::{Group, geteuid};

use crate::config::ControlSettings;

/// A listening control socket at its final path.
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener (non-blocking).
    pub listener: UnixListener,
    /// Its path.
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundSocket {
    /// Removes the socket file if it is still ours.
    pub fn remove(&self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Creates the directory (if needed) and binds the socket (module doc).
pub fn bind(settings: &ControlSettings) -> Result<BoundSocket, String> {
    let path = &settings.socket;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!(
            "control socket {}: not a file path",
            path.display()
        ));
    };
    prepare_dir(dir)?;
    remove_stale(path)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    if fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = fs::remove_file(&tmp);
    }
    let listener = UnixListener::bind(&tmp)
        .map_err(|e| format!("control socket: binding {}: {e}", tmp.display()))?;
    let finish = || -> Result<(), String> {
        fs::set_permissions(&tmp, Permissions::from_mode(settings.socket_mode))
            .map_err(|e| format!("control socket: setting the mode of {}: {e}", tmp.display()))?;
        if let Some(group) = &settings.socket_group {
            let gid = match Group::from_name(group) {
                Ok(Some(g)) => g.gid.as_raw(),
                Ok(None) => return Err(format!("control.socket_group: no group `{group}`")),
                Err(e) => return Err(format!("control.socket_group: looking up `{group}`: {e}")),
            };
            std::os::unix::fs::lchown(&tmp, None, Some(gid)).map_err(|e| {
                format!(
                    "control socket: giving {} to group {group}: {e}",
                    tmp.display()
                )
            })?;
        }
        fs::rename(&tmp, path)
            .map_err(|e| format!("control socket: moving it to {}: {e}", path.display()))
    };
    if let Err(e) = finish() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket: {e}"))?;
    let m = fs::symlink_metadata(path)
        .map_err(|e| format!("control socket: {}: {e}", path.display()))?;
    Ok(BoundSocket {
        listener,
        path: path.clone(),
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Creates `dir` 0755 if missing; checks it is safe to put the socket in.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    match DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "control socket directory {}: cannot create it: {e}",
                dir.display()
            ));
        }
    }
    let m = fs::symlink_metadata(dir)
        .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
    let euid = geteuid().as_raw();
    if m.file_type().is_symlink() {
        return Err(format!(
            "control socket directory {} is a symbolic link; refusing to follow it",
            dir.display()
        ));
    }
    if !m.is_dir() {
        return Err(format!(
            "control socket directory {} is not a directory",
            dir.display()
        ));
    }
    if m.uid() != 0 && m.uid() != euid {
        return Err(format!(
            "control socket directory {} belongs to uid {}, not to root or lvsd's user",
            dir.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "control socket directory {} is writable by group or others (mode {:o}); \
             use a directory only lvsd's user can write",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Removes a stale socket at `path` (module doc).
fn remove_stale(path: &Path) -> Result<(), String> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("control socket {}: {e}", path.display())),
    };
    if !m.file_type().is_socket() {
        return Err(format!(
            "control socket {} exists and is not a socket; not removing it",
            path.display()
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "control socket {}: another process is listening on it (is lvsd already running?)",
            path.display()
        )),
        Err(_) => fs::remove_file(path).or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(format!(
                    "control socket {}: removing the stale socket: {e}",
                    path.display()
                ))
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvsd-sock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn settings(path: PathBuf) -> ControlSettings {
        ControlSettings {
            socket: path,
            ..ControlSettings::default()
        }
    }

    #[test]
    fn creates_the_directory_and_the_socket_with_their_modes() {
        let d = scratch("modes");
        let path = d.join("run").join("lvsd.sock");
        let _ = fs::create_dir(&d);
        let s = bind(&settings(path.clone())).unwrap_or_else(|e| panic!("{e}"));
        let dm = fs::symlink_metadata(d.join("run")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dm.mode() & 0o777 & !0o022, 0o755 & !0o022);
        let sm = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(sm.file_type().is_socket());
        assert_eq!(sm.mode() & 0o777, 0o660);
        // A second daemon on the same path is refused while the first listens.
        let e = bind(&settings(path.clone())).err().unwrap_or_default();
        assert!(e.contains("another process is listening"), "{e}");
        // Once it is gone, its stale socket is replaced.
        drop(s);
        let s = bind(&settings(path.clone())).unwrap_or_else(|e| panic!("{e}"));
        s.remove();
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_unsafe_places() {
        let d = scratch("unsafe");
        fs::create_dir(&d).unwrap_or_else(|e| panic!("{e}"));
        // A regular file at the socket path is left alone.
        let path = d.join("lvsd.sock");
        fs::write(&path, b"not a socket").unwrap_or_else(|e| panic!("{e}"));
        let e = bind(&settings(path.clone())).err().unwrap_or_default();
        assert!(e.contains("is not a socket"), "{e}");
        assert!(path.exists());
        // A symlinked directory is not followed.
        let real = d.join("real");
        fs::create_dir(&real).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&real, d.join("link")).unwrap_or_else(|e| panic!("{e}"));
        let e = bind(&settings(d.join("link").join("lvsd.sock")))
            .err()
            .unwrap_or_default();
        assert!(e.contains("symbolic link"), "{e}");
        // A world-writable directory is refused.
        let open = d.join("open");
        fs::create_dir(&open).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap_or_else(|e| panic!("{e}"));
        let e = bind(&settings(open.join("lvsd.sock")))
            .err()
            .unwrap_or_default();
        assert!(e.contains("writable by group or others"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }
}
