//! State files in the data dir: counter state, log positions, pattern sets.
//!
//! Each file is one JSON envelope `{"meshmon_state": KIND, "version": N, "data": …}`,
//! written to a temporary file, synced, then renamed over the old one, so a crash leaves
//! either the old or the new file, never a torn one. A file that is truncated, corrupt, of
//! another kind or of a version this agent does not read is reported, moved aside to
//! `NAME.bad-<unix seconds>` and treated as absent, never a crash.

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
}
