//! `--spawn-mock`: start `ringway mock-upstream` on a loopback port chosen by the kernel, learn
//! the port from its log line, and stop it when the run ends.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the mock may take to print its address.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The log line that carries the address.
const LISTENING: &str = "mock provider listening on http://";

/// Why the mock could not be started.
#[derive(Debug)]
pub enum MockError {
    /// No ringway binary next to this one and no `$RINGWAY_BIN`.
    NotFound(PathBuf),
    /// Spawning failed.
    Spawn(std::io::Error),
    /// It exited or stayed silent instead of printing its address.
    NoAddress,
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MockError::NotFound(p) => write!(
                f,
                "no ringway binary at {} (build it with `cargo build --release --bin ringway` or set RINGWAY_BIN)",
                p.display()
            ),
            MockError::Spawn(e) => write!(f, "cannot start the mock: {e}"),
            MockError::NoAddress => write!(
                f,
                "the mock did not report its address within {}s",
                STARTUP_TIMEOUT.as_secs()
            ),
        }
    }
}

/// A running mock provider; stopped on drop.
pub struct Mock {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Mock {
    /// Its process id, for CPU and memory measurement.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$RINGWAY_BIN`, else `ringway` in this executable's directory.
pub fn find_ringway() -> Result<PathBuf, MockError> {
    if let Some(p) = std::env::var_os("RINGWAY_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(MockError::NotFound(p))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ringway")))
        .unwrap_or_else(|| PathBuf::from("ringway"));
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(MockError::NotFound(beside))
    }
}

/// The address in a mock log line, if it is the listening line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let at = line.find(LISTENING)?;
    let rest = line.get(at + LISTENING.len()..)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Start the mock with the given token delays.
pub fn spawn(bin: &Path, ttft_ms: Option<u64>, itl_ms: Option<u64>) -> Result<Mock, MockError> {
    let mut cmd = Command::new(bin);
    cmd.args(["mock-upstream", "--listen", "127.0.0.1:0"])
        .env("RINGWAY_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ms) = ttft_ms {
        cmd.args(["--ttft-ms", &ms.to_string()]);
    }
    if let Some(ms) = itl_ms {
        cmd.args(["--itl-ms", &ms.to_string()]);
    }
    let mut child = cmd.spawn().map_err(MockError::Spawn)?;
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(MockError::NoAddress);
    };
    let mut mock = Mock {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let (tx, rx) = mpsc::channel();
    // The reader keeps draining stderr after the address so the mock never blocks on a full
    // pipe; it ends when the mock exits.
    let spawned = std::thread::Builder::new()
        .name("mock-stderr".into())
        .spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addr) = parse_listening(&line) {
                        sent = tx.send(addr).is_ok();
                    }
                }
            }
        });
    if spawned.is_err() {
        return Err(MockError::NoAddress);
    }
    match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(addr) => {
            mock.addr = addr;
            Ok(mock)
        }
        Err(_) => Err(MockError::NoAddress),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        assert_eq!(
            parse_listening("ringway info: mock provider listening on http://127.0.0.1:40123"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            parse_listening("ringway info: mock provider listening on https://127.0.0.1:1"),
            None
        );
        assert_eq!(parse_listening("ringway info: driver io_uring"), None);
    }
}
