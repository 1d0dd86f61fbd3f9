//! A three-node MariaDB Galera cluster on loopback that the tests start
//! themselves (Debian's mariadb-server and galera-4; each node its own data
//! directory and ports, run as the `mysql` user; stopped by PID and removed
//! afterwards; never the machine's own MariaDB), and Debian's HAProxy in
//! front of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;

use crate::receivers::free_port;

const GALERA: &str = "/usr/lib/galera/libgalera_smm.so";

/// How soon the other nodes give up on a node that stopped answering. Until
/// they do, every commit and every read that waits for the cluster
/// (`wsrep_sync_wait`) waits too: with Galera's defaults (suspected after
/// 5 s) a killed node stalls token checks for about 6 s; with these, for
/// about 2-3 s. The README recommends the same on a reliable network.
const EVICTION: &str = "evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;\
                        evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT4S";

struct Node {
    child: Child,
    /// Whether `child` is still to be stopped (a killed node was reaped, and
    /// its PID may since belong to another process).
    running: bool,
    port: u16,
}

/// A Galera cluster of three nodes on loopback.
pub struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        assert!(
            Path::new(GALERA).exists() && Path::new("/usr/sbin/mariadbd").exists(),
            "galera-4 and mariadb-server must be installed (scripts/install-deps.sh installs them)"
        );
        let dir =
            std::env::temp_dir().join(format!("latchkey-galera-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let ports: Vec<[u16; 4]> = (0..3)
            .map(|_| [free_port(), free_port(), free_port(), free_port()])
            .collect();
        let gcomm = ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p[1]))
            .collect::<Vec<_>>()
            .join(",");
        for (i, [sql, group, ist, sst]) in ports.iter().enumerate() {
            let node = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&node).unwrap();
            let n = node.display();
            std::fs::write(
                node.join("my.cnf"),
                format!(
                    "[mysqld]\nuser=mysql\ndatadir={n}/data\nsocket={n}/sock\nport={sql}\n\
                     bind-address=127.0.0.1\npid-file={n}/pid\nlog-error={n}/err.log\n\
                     skip-name-resolve\nbinlog_format=ROW\ndefault_storage_engine=InnoDB\n\
                     innodb_autoinc_lock_mode=2\ninnodb_buffer_pool_size=64M\n\
                     innodb_log_file_size=16M\nwsrep_on=ON\nwsrep_provider={GALERA}\n\
                     wsrep_cluster_name=latchkey_test\nwsrep_cluster_address=gcomm://{gcomm}\n\
                     wsrep_node_name=n{i}\nwsrep_node_address=127.0.0.1\n\
                     wsrep_provider_options=\"gmcast.listen_addr=tcp://127.0.0.1:{group};\
                     ist.recv_addr=127.0.0.1:{ist};gcache.size=16M;{EVICTION}\"\n\
                     wsrep_sst_method=rsync\nwsrep_sst_receive_address=127.0.0.1:{sst}\n"
                ),
            )
            .unwrap();
        }
        // The nodes run as mysql (their rsync state transfer does too).
        let status = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(&dir)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown failed");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for (i, [sql, ..]) in ports.iter().enumerate() {
            let cnf = cluster.config(i);
            let installed = Command::new("mariadb-install-db")
                .arg(format!("--defaults-file={}", cnf.display()))
                .arg("--auth-root-authentication-method=normal")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("mariadb-install-db runs");
            assert!(
                installed.success(),
                "mariadb-install-db failed for node {i}"
            );
            let mut command = Command::new("/usr/sbin/mariadbd");
            command.arg(format!("--defaults-file={}", cnf.display()));
            if i == 0 {
                command.arg("--wsrep-new-cluster");
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mariadbd starts");
            cluster.nodes.push(Node {
                child,
                running: true,
                port: *sql,
            });
            cluster.wait_synced(i);
        }
        cluster
    }

    pub fn server_url(&self, i: usize) -> String {
        format!("mysql://root@127.0.0.1:{}", self.nodes[i].port)
    }

    /// Waits (bounded) until node `i` answers and is Synced.
    pub fn wait_synced(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut conn) = diesel::MysqlConnection::establish(&self.server_url(i)) {
                let state = Self::status_value(&mut conn, "wsrep_local_state_comment");
                if state.as_deref() == Some("Synced") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not join the cluster:\n{}",
                std::fs::read_to_string(self.dir.join(format!("n{i}/err.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The SQL port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    fn config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}/my.cnf"))
    }

    /// Runs one statement on node `i` as root.
    pub fn execute(&self, i: usize, sql: &str) {
        let mut conn = diesel::MysqlConnection::establish(&self.server_url(i))
            .unwrap_or_else(|e| panic!("node {i} answers: {e}"));
        diesel::sql_query(sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Kills node `i` with SIGKILL, as a crash of its host would end it.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let status = Command::new("kill")
            .args(["-KILL", &node.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -KILL failed");
        node.child.wait().expect("the killed node is reaped");
        node.running = false;
    }

    /// Starts the killed node `i` again from its data directory, as
    /// `galera_recovery` does: first the position its InnoDB log reached
    /// (`--wsrep-recover`), then the server from there, so that it catches
    /// up by an incremental transfer from another node's cache. Does not
    /// wait: see [`Cluster::wait_synced`].
    pub fn restart(&mut self, i: usize) {
        assert!(!self.nodes[i].running, "node {i} is running");
        let cnf = self.config(i);
        let log = self.dir.join(format!("n{i}/recover.log"));
        let recovered = Command::new("/usr/sbin/mariadbd")
            .arg(format!("--defaults-file={}", cnf.display()))
            .arg("--wsrep-recover")
            .arg(format!("--log-error={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadbd --wsrep-recover runs");
        assert!(recovered.success(), "wsrep recovery failed for node {i}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let position = text
            .lines()
            .rev()
            .find_map(|line| line.split("WSREP: Recovered position: ").nth(1))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no recovered position for node {i}:\n{text}"))
            .to_owned();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg(format!("--defaults-file={}", cnf.display()))
            .arg(format!("--wsrep-start-position={position}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        self.nodes[i].child = child;
        self.nodes[i].running = true;
    }

    /// How many client connections node `i` has open on `database`.
    pub fn connections_to(&self, i: usize, database: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel::MysqlConnection::establish(&self.server_url(i))
            .unwrap_or_else(|e| panic!("node {i} answers: {e}"));
        diesel::sql_query("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ?")
            .bind::<diesel::sql_types::Text, _>(database)
            .get_result::<Count>(&mut conn)
            .expect("the process list")
            .n
    }

    /// How many nodes node `i` sees in its (primary) component.
    pub fn size_seen_by(&self, i: usize) -> u32 {
        let mut conn = diesel::MysqlConnection::establish(&self.server_url(i))
            .unwrap_or_else(|e| panic!("node {i} answers: {e}"));
        Self::status_value(&mut conn, "wsrep_cluster_size")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn status_value(conn: &mut diesel::MysqlConnection, name: &str) -> Option<String> {
        #[derive(QueryableByName)]
        struct Status {
            #[diesel(sql_type = diesel::sql_types::Text)]
            #[diesel(column_name = Value)]
            value: String,
        }
        diesel::sql_query(format!("SHOW STATUS LIKE '{name}'"))
            .get_result::<Status>(conn)
            .ok()
            .map(|s| s.value)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only these processes, by PID; then the directory they used.
        for node in self.nodes.iter_mut().filter(|node| node.running) {
            let _ = Command::new("kill")
                .args(["-TERM", &node.child.id().to_string()])
                .status();
        }
        for node in self.nodes.iter_mut().filter(|node| node.running) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(node.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's HAProxy with the documented configuration,
/// `docs/haproxy-galera.cfg`, balancing MySQL connections over the
/// cluster's nodes.
pub struct Haproxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The MySQL user HAProxy's health check logs in as (no password, no rights),
/// as `docs/haproxy-galera.cfg` names it.
const CHECK_USER: &str = "haproxy_check";

impl Haproxy {
    pub fn start(cluster: &Cluster) -> Self {
        assert!(
            Path::new("/usr/sbin/haproxy").exists(),
            "haproxy must be installed (scripts/install-deps.sh installs it)"
        );
        cluster.execute(
            0,
            &format!("CREATE USER IF NOT EXISTS '{CHECK_USER}'@'127.0.0.1'"),
        );
        let dir = cluster.dir.join("haproxy");
        std::fs::create_dir_all(&dir).expect("haproxy's directory");
        let port = free_port();
        let mut text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/haproxy-galera.cfg"
        ))
        .expect("docs/haproxy-galera.cfg")
        .replace("LISTEN", &format!("127.0.0.1:{port}"));
        for i in 0..cluster.nodes.len() {
            text = text.replace(
                &format!("NODE{i}"),
                &format!("127.0.0.1:{}", cluster.port(i)),
            );
        }
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, text).expect("haproxy.cfg");
        let checked = Command::new("/usr/sbin/haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .status()
            .expect("haproxy -c runs");
        assert!(checked.success(), "haproxy.cfg is invalid");
        let child = Command::new("/usr/sbin/haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let haproxy = Self { child, port, dir };
        // Bounded: until a connection through it reaches a node.
        let deadline = Instant::now() + Duration::from_secs(30);
        while diesel::MysqlConnection::establish(&haproxy.server_url()).is_err() {
            assert!(Instant::now() < deadline, "nothing answers through haproxy");
            std::thread::sleep(Duration::from_millis(100));
        }
        haproxy
    }

    /// `mysql://root@127.0.0.1:PORT`, through HAProxy to the nodes.
    pub fn server_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
