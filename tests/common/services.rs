//! Services of a test's own, for tests that crash and restart them: an Apache Kafka node and a
//! PostgreSQL cluster, started by the same scripts `./dev` uses (`tools/kafka/broker`,
//! `tools/postgres/cluster`), in a temporary folder, on free ports. Dropping one stops it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tool(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` every 50 ms until it holds; panics with `what` and the log after `limit`.
fn await_condition(what: &str, log: &Path, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One Apache Kafka node (KRaft) of the test's own.
pub struct PrivateKafka {
    dir: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    child: Option<Child>,
    starts: usize,
}

impl PrivateKafka {
    pub fn start() -> PrivateKafka {
        let mut k = PrivateKafka {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            controller_port: free_port(),
            child: None,
            starts: 0,
        };
        k.launch();
        k
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("kafka.log")
    }

    fn launch(&mut self) {
        let lib = std::env::var("AUTHTRAIL_DEV_KAFKA_LIB").expect(
            "AUTHTRAIL_DEV_KAFKA_LIB is not set: run the suite with ./dev test, which resolves Apache Kafka",
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(tool("tools/kafka/broker"))
            .arg(self.dir.path().join("node"))
            .arg(self.port.to_string())
            .arg(self.controller_port.to_string())
            .env("AUTHTRAIL_DEV_KAFKA_LIB", lib)
            .env("AUTHTRAIL_DEV_KAFKA_HEAP", "-Xms128m -Xmx512m")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
        // The broker says "Kafka Server started" once per start, when it serves requests.
        let (log, starts) = (self.log(), self.starts);
        await_condition(
            "the private Kafka broker did not start",
            &log.clone(),
            Duration::from_secs(90),
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .matches("Kafka Server started")
                    .count()
                    >= starts
            },
        );
    }

    /// SIGKILL: no controlled shutdown, no flush of its own (the page cache survives, as it
    /// does when a broker process dies).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of the test's own, durable (fsync and synchronous commit on, as in
/// production), so a crash of it loses nothing that was committed.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        // The server may run as another OS user (root starts it as `postgres`).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pg = PrivatePostgres {
            dir,
            port: free_port(),
        };
        pg.launch();
        pg
    }

    /// The admin URL (database `postgres`) and the URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// `tools/postgres/cluster VERB DATA_DIR REST...`; panics with its error and the log.
    fn cluster(&self, verb: &str, rest: &[String]) {
        let out = Command::new(tool("tools/postgres/cluster"))
            .arg(verb)
            .arg(self.dir.path().join("data"))
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tools/postgres/cluster {verb} {rest:?}: {}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    fn launch(&self) {
        let log = self.log().display().to_string();
        self.cluster("start", &[self.port.to_string(), log]);
    }

    /// A crash as far as the data goes: `immediate` mode (no checkpoint; WAL recovery at the
    /// next start), then a start on the same port.
    pub fn crash_and_restart(&self) {
        self.cluster("stop", &["immediate".to_owned()]);
        self.launch();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(tool("tools/postgres/cluster"))
            .arg("stop")
            .arg(self.dir.path().join("data"))
            .arg("immediate")
            .output();
    }
}
