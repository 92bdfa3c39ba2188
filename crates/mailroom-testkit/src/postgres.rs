//! `PostgresCluster`: a private PostgreSQL cluster (Debian's server binaries) started in a temp dir as the `postgres` user on a free loopback port, for the outbox tests and benches; stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::KitError;

/// Configures a [`PostgresCluster`].
#[derive(Clone, Debug, Default)]
pub struct PostgresClusterBuilder {
    /// Off by default: tests want speed and lose nothing to a power cut; benches switch it on.
    fsync: bool,
}

impl PostgresClusterBuilder {
    /// Runs with `fsync` on (default off): on for benchmarks, whose figures must include the
    /// commit's flush to disk as production pays it.
    pub fn fsync(mut self, enabled: bool) -> Self {
        self.fsync = enabled;
        self
    }

    /// Runs `initdb` and `pg_ctl start` (as the `postgres` user via `runuser` when run as
    /// root, since PostgreSQL refuses to run as root) and waits until it accepts connections.
    pub fn start(self) -> Result<PostgresCluster, KitError> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| KitError::Postgres(format!("/usr/lib/postgresql: {e} (install postgresql-15)")))?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .ok_or_else(|| KitError::Postgres("no initdb under /usr/lib/postgresql/*/bin".into()))?;
        let dir = tempfile::tempdir().map_err(|e| KitError::io("creating the cluster's temp dir", e))?;
        let data = dir.path().join("data");
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| KitError::io("finding a free port", e))?
            .port();
        let owner = if as_root { Some("postgres") } else { None };
        as_owner(owner, &bin.join("initdb"), &["-A", "trust", "-U", "postgres", "-D", text(&data)?])?;
        let fsync = if self.fsync { "on" } else { "off" };
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync={fsync}", text(dir.path())?);
        let log = dir.path().join("log");
        as_owner(
            owner,
            &bin.join("pg_ctl"),
            &["-D", text(&data)?, "-o", &options, "-w", "-t", "60", "-l", text(&log)?, "start"],
        )?;
        Ok(PostgresCluster { bin, data, port, owner, _dir: dir })
    }
}

/// A private PostgreSQL cluster on 127.0.0.1, stopped (`pg_ctl stop -m immediate`) when dropped.
///
/// ```no_run
/// let cluster = mailroom_testkit::PostgresCluster::builder().start()?;
/// assert!(cluster.url().starts_with("postgres://postgres@127.0.0.1:"));
/// # Ok::<(), mailroom_testkit::KitError>(())
/// ```
#[derive(Debug)]
pub struct PostgresCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    owner: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl PostgresCluster {
    /// Starts configuring one.
    pub fn builder() -> PostgresClusterBuilder {
        PostgresClusterBuilder::default()
    }

    /// For tests: a started cluster; `Ok(None)` (the reason on stderr) when PostgreSQL cannot
    /// start here, except under CI (`CI` set), where that is an error, so no test is skipped there.
    pub fn for_tests() -> Result<Option<PostgresCluster>, KitError> {
        match PostgresCluster::builder().start() {
            Ok(cluster) => Ok(Some(cluster)),
            Err(error) if std::env::var_os("CI").is_some() => Err(error),
            Err(error) => {
                eprintln!("skipping: PostgreSQL could not start here ({error}); .ci/run installs it");
                Ok(None)
            }
        }
    }

    /// The database URL (user `postgres`, trust authentication, database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        if let Ok(data) = text(&self.data) {
            let _ = as_owner(self.owner, &self.bin.join("pg_ctl"), &["-D", data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn text(path: &Path) -> Result<&str, KitError> {
    path.to_str().ok_or_else(|| KitError::Postgres(format!("{} is not UTF-8", path.display())))
}

fn as_owner(owner: Option<&str>, program: &Path, args: &[&str]) -> Result<(), KitError> {
    match owner {
        Some(user) => run(Command::new("runuser").args(["-u", user, "--"]).arg(program).args(args)),
        None => run(Command::new(program).args(args)),
    }
}

fn run(command: &mut Command) -> Result<(), KitError> {
    let output = command.output().map_err(|e| KitError::Postgres(format!("{command:?}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(KitError::Postgres(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}
