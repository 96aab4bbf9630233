//! What `ringway check` tries beyond the file itself: every path `serve` opens or creates at
//! start (the access log, the custody and responses stores, the pid file), probed the way
//! serve opens it and leaving nothing behind, so that check refuses what serve would refuse.
//! Not for the request path: it touches the file system.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read as _};
use std::path::Path;

use crate::access_log::Destination;
use crate::config::Config;
use crate::responses_store::sqlite::Location;

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

/// Every problem serve would meet with `config`'s paths, each as `key: path: reason`.
pub fn probe(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note = |key: &str, path: &Path, outcome: Result<(), String>| {
        if let Err(why) = outcome {
            problems.push(format!("{key}: {}: {why}", path.display()));
        }
    };
    if let Some(Destination::File(p)) = &config.access_log {
        note("access_log.path", p, appendable(p));
    }
    // With [cluster] postgres neither store opens its file.
    let shared = config.cluster.postgres.is_some();
    if let Some(p) = config.custody.as_ref().and_then(|c| c.path.as_ref()) {
        if !shared {
            note("custody.path", p, database(p));
        }
    }
    if let Some(Location::File(p)) = config
        .responses_store
        .as_ref()
        .filter(|r| !r.shared)
        .map(|r| &r.location)
    {
        note("responses.store.path", p, database(p));
    }
    if let Some(p) = &config.server.pid_file {
        // Written to a temporary name beside it, then renamed over it.
        note("server.pid_file", p, dir_takes_files(parent(p)));
    }
    problems
}

/// The directory a file is created in (`.` for a bare name).
fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// serve creates files in a directory, never the directory: it must exist and take a new
/// file. Tried with a file of check's own name, created and removed at once; never the path
/// itself, which a gateway starting now may be creating.
fn dir_takes_files(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "the directory {} does not exist (serve creates the file, not its directory)",
                dir.display()
            ))
        }
        Err(e) => return Err(format!("the directory {}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => return Err(format!("{} is not a directory", dir.display())),
        Ok(_) => {}
    }
    let trial = dir.join(format!(".ringway-check-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&trial) {
        Ok(_) => {
            let _ = std::fs::remove_file(&trial);
            Ok(())
        }
        Err(e) => Err(format!("cannot create a file in {}: {e}", dir.display())),
    }
}

/// The access log: opened for appending, created when missing.
fn appendable(p: &Path) -> Result<(), String> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Err("is a directory".into()),
        Ok(_) => OpenOptions::new()
            .append(true)
            .open(p)
            .map(drop)
            .map_err(|e| format!("cannot open it for appending: {e}")),
        Err(e) if e.kind() == ErrorKind::NotFound => dir_takes_files(parent(p)),
        Err(e) => Err(e.to_string()),
    }
}

/// A SQLite store in WAL mode: the file, created when missing, must be a database serve can
/// write, and its directory must take the `-wal` and `-shm` files beside it either way.
fn database(p: &Path) -> Result<(), String> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Err("is a directory".into()),
        Ok(_) => {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("cannot open it for writing: {e}"))?;
            let mut head = Vec::with_capacity(SQLITE_HEADER.len());
            f.take(SQLITE_HEADER.len() as u64)
                .read_to_end(&mut head)
                .map_err(|e| format!("cannot read it: {e}"))?;
            // An empty file is a database nothing has written yet; SQLite takes it.
            if !head.is_empty() && head != SQLITE_HEADER {
                return Err("not a SQLite database".into());
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    dir_takes_files(parent(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_in_the_working_directory() {
        assert_eq!(parent(Path::new("custody.db")), Path::new("."));
        assert_eq!(parent(Path::new("/var/lib/x.db")), Path::new("/var/lib"));
    }
}
