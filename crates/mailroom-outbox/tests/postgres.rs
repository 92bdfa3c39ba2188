//! The outbox on a real PostgreSQL 15 cluster the test starts itself (as the `postgres` user, on a free loopback port, in a temp dir): idempotent enqueue and two dispatchers sharing one table through `FOR UPDATE SKIP LOCKED` claims.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mailroom_core::RetryPolicy;
use mailroom_outbox::{Dispatcher, RunOptions, Store, bulk_retry};
use mailroom_testkit::ChaosSmtpServer;

/// A private cluster, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a cluster, or says why it cannot. Under CI (`CI` set) not starting is a failure.
    fn start() -> Option<Cluster> {
        match Cluster::try_start() {
            Ok(cluster) => Some(cluster),
            Err(why) if std::env::var_os("CI").is_some() => panic!("PostgreSQL could not start under CI: {why}"),
            Err(why) => {
                eprintln!("skipping: PostgreSQL could not start here ({why}); .ci/run installs it");
                None
            }
        }
    }

    fn try_start() -> Result<Cluster, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user.
        run(Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()))?;
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        as_postgres(&bin.join("initdb"), &["-A", "trust", "-U", "postgres", "-D", path(&data)])?;
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", path(dir.path()));
        as_postgres(
            &bin.join("pg_ctl"),
            &["-D", path(&data), "-o", &options, "-w", "-t", "60", "-l", path(&dir.path().join("log")), "start"],
        )?;
        Ok(Cluster { bin, data, port, _dir: dir })
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", path(&self.data), "-m", "immediate", "stop"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn as_postgres(program: &Path, args: &[&str]) -> Result<(), String> {
    run(Command::new("runuser").args(["-u", "postgres", "--"]).arg(program).args(args))
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?}: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_postgres_table_and_send_each_message_once() {
    let Some(cluster) = Cluster::start() else { return };
    let store = Store::open(&cluster.url()).await.unwrap();
    let first = store.enqueue(&messages(200)).await.unwrap();
    assert!(first.iter().all(|e| !e.duplicate));
    let again = store.enqueue(&messages(200)).await.unwrap();
    assert!(again.iter().all(|e| e.duplicate), "the same Message-IDs are duplicates");

    let server = ChaosSmtpServer::builder().defer_rate(0.1).seed(7).start().await.unwrap();
    let options = |worker: &str| {
        let retry = RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..bulk_retry(8)
        };
        RunOptions { retry, max_wait: Duration::from_secs(5), ..RunOptions::until_empty(worker) }
    };
    let second_store = Store::open(&cluster.url()).await.unwrap();
    let one = Dispatcher::new(store.clone(), smtp_to(server.addr(), 4), limits(4));
    let two = Dispatcher::new(second_store, smtp_to(server.addr(), 4), limits(4));
    let (a, b) = tokio::join!(
        one.run(options("w1"), std::future::pending(), Arc::default()),
        two.run(options("w2"), std::future::pending(), Arc::default()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 200, "{a:?} {b:?}");
    let delivered = server.delivered_counts();
    assert_eq!(delivered.len(), 200);
    assert!(delivered.values().all(|n| *n == 1), "no message was claimed twice");
    assert_eq!(store.counts().await.unwrap().sent, 200);
    let newest = store.list(None, 1).await.unwrap();
    assert_eq!(newest[0].subject.as_deref(), Some("Order 199 confirmed"), "substr() on bytea reads the subject");
}
