//! State files in the data dir: counter state, log positions, pattern sets.
//!
//! Each file is one JSON envelope `{"meshmon_state": KIND, "version": N, "data": …}`,
//! written to a temporary file, synced, then renamed over the old one, so a crash leaves
//! either the old or the new file, never a torn one. A file that is truncated, corrupt, of
//! another kind or of a version this agent does not read is reported, moved aside to
//! `NAME.bad-<unix seconds>` and treated as absent, never a crash. Files written with
//! [`save_keeping_previous`] (log positions and patterns) keep their previous generation
//! as `NAME.prev`, which [`load_or_previous`] reads when the file itself is damaged.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of every state file this agent writes.
pub const STATE_VERSION: u32 = 1;

/// What happened when a state file was read.
#[derive(Debug)]
pub enum Loaded<T> {
    /// No file yet.
    Absent,
    /// Read and decoded.
    Ok(T),
    /// The file was unreadable; it was moved to `moved_to`.
    SetAside {
        /// Why it could not be used.
        reason: String,
        /// Where it is now.
        moved_to: PathBuf,
    },
}

/// Errors writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O error on `path`.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Serialisation failed.
    #[error("state file {path}: {source}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    meshmon_state: &'a str,
    version: u32,
    data: &'a T,
}

#[derive(serde::Deserialize)]
struct EnvelopeIn {
    meshmon_state: String,
    version: u32,
    data: serde_json::Value,
}

/// Writes `data` as state `kind` to `path` atomically (temp file, fsync, rename).
pub fn save<T: Serialize>(path: &Path, kind: &str, data: &T) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = serde_json::to_vec(&EnvelopeOut {
        meshmon_state: kind,
        version: STATE_VERSION,
        data,
    })
    .map_err(|source| StateError::Encode {
        path: path.to_owned(),
        source,
    })?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads state `kind` from `path`; see the module docs for what happens to a bad file.
pub fn load<T: DeserializeOwned>(path: &Path, kind: &str, now_secs: i64) -> Loaded<T> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Absent,
        Err(e) => return set_aside(path, format!("unreadable: {e}"), now_secs),
    };
    let env: EnvelopeIn = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => return set_aside(path, format!("corrupt or truncated: {e}"), now_secs),
    };
    if env.meshmon_state != kind {
        return set_aside(
            path,
            format!("holds {:?} state, expected {kind:?}", env.meshmon_state),
            now_secs,
        );
    }
    if env.version != STATE_VERSION {
        return set_aside(
            path,
            format!(
                "version {} (this agent reads version {STATE_VERSION})",
                env.version
            ),
            now_secs,
        );
    }
    match serde_json::from_value(env.data) {
        Ok(v) => Loaded::Ok(v),
        Err(e) => set_aside(path, format!("bad {kind} data: {e}"), now_secs),
    }
}

/// `NAME.prev`: the generation before `path`, kept by [`save_keeping_previous`].
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".prev");
    path.with_file_name(name)
}

/// Like [`save`], keeping the file it replaces as `NAME.prev` (a hard link, so the
/// current file never disappears, even for an instant): the fallback of
/// [`load_or_previous`]. A failure to keep the previous generation is not an error.
pub fn save_keeping_previous<T: Serialize>(
    path: &Path,
    kind: &str,
    data: &T,
) -> Result<(), StateError> {
    if path.exists() {
        let prev = previous_path(path);
        let _ = fs::remove_file(&prev);
        let _ = fs::hard_link(path, &prev);
    }
    save(path, kind, data)
}

/// What [`load_or_previous`] found.
#[derive(Debug)]
pub enum Fallback<T> {
    /// The file itself (read, absent or set aside with no usable previous generation).
    Primary(Loaded<T>),
    /// The file was set aside and its previous generation (`NAME.prev`) was read.
    Previous {
        /// The previous generation's data.
        data: T,
        /// Why the file itself could not be used.
        reason: String,
        /// Where the file itself is now.
        moved_to: PathBuf,
    },
}

/// Reads `path` as [`load`] does; when it has to be set aside, reads its previous
/// generation (`NAME.prev`, see [`save_keeping_previous`]) instead, itself set aside
/// when bad. An absent file is absent: the previous generation is read only to
/// replace a damaged file.
pub fn load_or_previous<T: DeserializeOwned>(
    path: &Path,
    kind: &str,
    now_secs: i64,
) -> Fallback<T> {
    match load(path, kind, now_secs) {
        Loaded::SetAside { reason, moved_to } => match load(&previous_path(path), kind, now_secs) {
            Loaded::Ok(data) => Fallback::Previous {
                data,
                reason,
                moved_to,
            },
            Loaded::Absent => Fallback::Primary(Loaded::SetAside { reason, moved_to }),
            Loaded::SetAside {
                reason: r2,
                moved_to: m2,
            } => Fallback::Primary(Loaded::SetAside {
                reason: format!(
                    "{reason}; its previous generation too ({r2}, moved to {})",
                    m2.display()
                ),
                moved_to,
            }),
        },
        other => Fallback::Primary(other),
    }
}

fn set_aside<T>(path: &Path, reason: String, now_secs: i64) -> Loaded<T> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".bad-{now_secs}"));
    let moved_to = path.with_file_name(name);
    if let Err(e) = fs::rename(path, &moved_to) {
        return Loaded::SetAside {
            reason: format!("{reason}; could not move it aside: {e}"),
            moved_to: path.to_owned(),
        };
    }
    Loaded::SetAside { reason, moved_to }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshmon-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_and_bad_files_are_set_aside() {
        let d = dir("rt");
        let p = d.join("positions.json");
        assert!(matches!(
            load::<Vec<u32>>(&p, "positions", 1),
            Loaded::Absent
        ));
        save(&p, "positions", &vec![1u32, 2, 3]).unwrap();
        match load::<Vec<u32>>(&p, "positions", 1) {
            Loaded::Ok(v) => assert_eq!(v, [1, 2, 3]),
            other => panic!("{other:?}"),
        }
        // Another kind.
        match load::<Vec<u32>>(&p, "patterns", 7) {
            Loaded::SetAside { reason, moved_to } => {
                assert!(reason.contains("expected \"patterns\""), "{reason}");
                assert!(moved_to.to_string_lossy().ends_with("positions.json.bad-7"));
                assert!(moved_to.exists() && !p.exists());
            }
            other => panic!("{other:?}"),
        }
        // Truncated.
        save(&p, "positions", &vec![1u32]).unwrap();
        let full = fs::read(&p).unwrap();
        fs::write(&p, &full[..full.len() / 2]).unwrap();
        assert!(matches!(
            load::<Vec<u32>>(&p, "positions", 8),
            Loaded::SetAside { .. }
        ));
        // Foreign version.
        fs::write(
            &p,
            br#"{"meshmon_state":"positions","version":99,"data":[]}"#,
        )
        .unwrap();
        match load::<Vec<u32>>(&p, "positions", 9) {
            Loaded::SetAside { reason, .. } => assert!(reason.contains("version 99")),
            other => panic!("{other:?}"),
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_file_falls_back_to_its_previous_generation() {
        let d = dir("prev");
        let p = d.join("log-positions.json");
        save_keeping_previous(&p, "positions", &vec![1u32]).unwrap();
        assert!(!previous_path(&p).exists());
        save_keeping_previous(&p, "positions", &vec![2u32]).unwrap();
        save_keeping_previous(&p, "positions", &vec![3u32]).unwrap();
        // Intact: the file itself.
        match load_or_previous::<Vec<u32>>(&p, "positions", 1) {
            Fallback::Primary(Loaded::Ok(v)) => assert_eq!(v, [3]),
            other => panic!("{other:?}"),
        }
        // Damaged: set aside, the generation before it is read.
        fs::write(&p, b"{\"meshmon_state\":\"posi").unwrap();
        match load_or_previous::<Vec<u32>>(&p, "positions", 2) {
            Fallback::Previous {
                data,
                reason,
                moved_to,
            } => {
                assert_eq!(data, [2]);
                assert!(reason.contains("corrupt or truncated"), "{reason}");
                assert!(moved_to.exists() && !p.exists());
            }
            other => panic!("{other:?}"),
        }
        // Both damaged: set aside, reported with both reasons.
        fs::write(&p, b"garbage").unwrap();
        fs::write(previous_path(&p), b"garbage").unwrap();
        match load_or_previous::<Vec<u32>>(&p, "positions", 3) {
            Fallback::Primary(Loaded::SetAside { reason, .. }) => {
                assert!(reason.contains("previous generation too"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Absent stays absent.
        let q = d.join("other.json");
        assert!(matches!(
            load_or_previous::<Vec<u32>>(&q, "positions", 4),
            Fallback::Primary(Loaded::Absent)
        ));
        let _ = fs::remove_dir_all(&d);
    }
}
