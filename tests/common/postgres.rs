//! A throwaway PostgreSQL for tests: `initdb` into a temp directory, `postgres` on 127.0.0.1 on
//! a free port (its unix socket in the same directory), a database per [`Postgres::database`],
//! stopped (and restartable on the same port and data) by the test, and killed on drop. Uses
//! Debian's server binaries under `/usr/lib/postgresql/*/bin` (tests/setup.sh installs the
//! `postgresql` package). `initdb` and `postgres` refuse to run as root: as root they run as the
//! `postgres` system user (setpriv, so the child's pid is the server's), on directories chowned
//! to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The newest `bin` directory of Debian's PostgreSQL packages.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (tests/setup.sh)")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .expect("an initdb under /usr/lib/postgresql/*/bin (tests/setup.sh)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server of one test.
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
    settings: Vec<(String, String)>,
    child: Option<Child>,
}

impl Postgres {
    /// initdb and start, tuned for tests (no fsync: a test's data need not survive a power cut).
    pub fn start() -> Postgres {
        Postgres::start_with(&[
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ])
    }

    /// initdb and start with server `settings` (`-c name=value`), e.g. none for the defaults a
    /// production server keeps (fsync on).
    pub fn start_with(settings: &[(&str, &str)]) -> Postgres {
        let dir = super::temp_path("pg");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the PostgreSQL test directory");
        }
        let mut pg = Postgres {
            dir,
            port: 0,
            bin: bin_dir(),
            as_postgres,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        let out = pg
            .command("initdb")
            .args(["-U", "ringway", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C.UTF-8", "-D"])
            .arg(pg.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.port = super::closed_port();
        pg.restart();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `tool` from the server's bin directory, as the `postgres` user when we are root.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
            c.arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Start the server (again) on its port and data, and wait until it takes connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"]);
        for (k, v) in &self.settings {
            cmd.args(["-c", &format!("{k}={v}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls).is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("postgres exited ({status}): {}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server the way an operator's fast shutdown does: every session is ended, the
    /// port is closed until [`Postgres::restart`].
    pub fn stop(&mut self) {
        self.signal_and_wait("INT");
    }

    fn signal_and_wait(&mut self, sig: &str) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn url_of(&self, db: &str) -> String {
        format!("postgres://ringway@127.0.0.1:{}/{db}", self.port)
    }

    /// Create database `name` and return its URL.
    pub fn database(&self, name: &str) -> String {
        let mut c = self.client("postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url_of(name)
    }

    /// A client on database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url_of(db), postgres::NoTls).unwrap()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: the data is thrown away with the directory.
        self.signal_and_wait("QUIT");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
