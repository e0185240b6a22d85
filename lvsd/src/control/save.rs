//! Writing a saved configuration to disk for `save_config`, on a blocking thread of the
//! control plane (never on the forwarding thread).
//!
//! Invariants: the path must be absolute and name a file; an existing symbolic link (or
//! anything but a regular file) at the path is refused, never followed; the file is
//! written under a temporary name in the same directory (created exclusively, not
//! following links, mode 0640), synced, then renamed over the path, so a reader sees the
//! old file or the whole new one; a failed write leaves no temporary file behind.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of a saved configuration file.
pub const SAVED_MODE: u32 = 0o640;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `text` to `path` (module doc); the error is a sentence naming the file.
pub fn write_config_file(path: &str, text: &str) -> Result<(), String> {
    let p = Path::new(path);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(format!("`{path}` does not name a file"));
    };
    if !p.is_absolute() {
        return Err(format!("`{path}` is not an absolute path"));
    }
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(format!("{path} is a symbolic link: refusing to follow it"));
        }
        Ok(m) if !m.is_file() => return Err(format!("{path} exists and is not a regular file")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{path}: {e}")),
    }
    let tmp = dir.join(format!(
        ".{}.lvsd-save-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SAVED_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        // The umask may have narrowed the mode; the file gets exactly 0640.
        f.set_permissions(Permissions::from_mode(SAVED_MODE))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, p)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("writing {path}: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lvsd-save-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    #[test]
    fn writes_0640_replaces_and_refuses_links() {
        let d = scratch("modes");
        let f = d.join("lvsd.toml");
        let fs_ = f.to_string_lossy().into_owned();
        assert_eq!(write_config_file(&fs_, "a = 1\n"), Ok(()));
        assert_eq!(write_config_file(&fs_, "b = 2\n"), Ok(()));
        assert_eq!(fs::read_to_string(&f).ok().as_deref(), Some("b = 2\n"));
        let mode = fs::metadata(&f).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o640));
        let link = d.join("link.toml");
        std::os::unix::fs::symlink(&f, &link).unwrap_or_else(|e| panic!("{e}"));
        let e = write_config_file(&link.to_string_lossy(), "c = 3\n").unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&f).ok().as_deref(), Some("b = 2\n"));
        assert!(write_config_file("relative.toml", "").is_err());
        assert!(write_config_file(&d.to_string_lossy(), "").is_err());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names.len(), 2, "{names:?}");
        let _ = fs::remove_dir_all(&d);
    }
}
