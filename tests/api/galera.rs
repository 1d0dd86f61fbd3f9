//! latchkey on a three-node MariaDB Galera cluster that the test starts
//! itself (Debian's mariadb-server and galera-4; each node its own data
//! directory and loopback ports, run as the `mysql` user, stopped and
//! removed afterwards; never the machine's own MariaDB). Two latchkey
//! instances, each on a different node, must agree at once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::db::DatabaseUrl;
use serde_json::json;

use crate::helpers::{PASSWORD, assert_error, spawn_app_on};
use crate::receivers::free_port;

const GALERA: &str = "/usr/lib/galera/libgalera_smm.so";

struct Node {
    child: Child,
    port: u16,
}

/// A Galera cluster of three nodes on loopback.
struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    fn start() -> Self {
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
                     ist.recv_addr=127.0.0.1:{ist};gcache.size=16M\"\n\
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
            let cnf = cluster.dir.join(format!("n{i}/my.cnf"));
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
            cluster.nodes.push(Node { child, port: *sql });
            cluster.wait_synced(i);
        }
        cluster
    }

    fn server_url(&self, i: usize) -> String {
        format!("mysql://root@127.0.0.1:{}", self.nodes[i].port)
    }

    /// Waits (bounded) until node `i` answers and is Synced.
    fn wait_synced(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut conn) = diesel::MysqlConnection::establish(&self.server_url(i)) {
                #[derive(QueryableByName)]
                struct State {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    #[diesel(column_name = Value)]
                    value: String,
                }
                let state = diesel::sql_query("SHOW STATUS LIKE 'wsrep_local_state_comment'")
                    .get_result::<State>(&mut conn);
                if state.is_ok_and(|s| s.value == "Synced") {
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only these processes, by PID; then the directory they used.
        for node in &mut self.nodes {
            let _ = Command::new("kill")
                .args(["-TERM", &node.child.id().to_string()])
                .status();
        }
        for node in &mut self.nodes {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_two_galera_nodes_agree_at_once_and_hold_the_cap() {
    // Arrange: the cluster, a database on it, latchkey A on node 0 and B on node 1.
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let name = format!("latchkey_galera_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::MysqlConnection::establish(&cluster.server_url(0)).unwrap();
    diesel::sql_query(format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .unwrap();
    let a = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(0))),
        |_| {},
    )
    .await;
    let b = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(1))),
        |_| {},
    )
    .await;

    // A session created through A is valid on B at once.
    let user = a.register_user().await;
    assert_eq!(b.status(&user.token).await.status(), 200);
    let second = b.login_token(&user.email, PASSWORD).await;
    assert_eq!(a.status(&second).await.status(), 200);

    // A logout on A is refused on B by the very next request, and the
    // other way round.
    assert_eq!(
        a.post_with_token("/auth/logout", &user.token)
            .await
            .status(),
        204
    );
    assert_error(b.status(&user.token).await, 401, "invalid_token").await;
    assert_eq!(
        b.post_with_token("/auth/logout-all", &second)
            .await
            .status(),
        204
    );
    assert_error(a.status(&second).await, 401, "invalid_token").await;

    // A password change on A: B refuses the old password and the other sessions.
    let on_b = b.login_token(&user.email, PASSWORD).await;
    let on_a = a.login_token(&user.email, PASSWORD).await;
    let changed = a
        .put_json_with_token(
            "/auth/password",
            &on_a,
            &json!({ "current_password": PASSWORD, "new_password": "a brand new and long passphrase" }),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_error(b.status(&on_b).await, 401, "invalid_token").await;
    assert_error(
        b.login(&user.email, PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;

    // An admin's suspension on A ends the user's sessions on B at once.
    let admin = a.register_admin().await;
    let victim = b.register_user().await;
    let suspended = a
        .patch_json_with_token(
            &format!("/admin/users/{}", victim.user_id),
            &admin.token,
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(suspended.status(), 200);
    assert_error(b.status(&victim.token).await, 401, "invalid_token").await;

    drop((a, b));
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn);

    across_galera_nodes_the_cap_holds_and_concurrent_bumps_never_fail(&cluster).await;
}

/// On the same cluster: a cap of 5 sessions and a write on every check.
async fn across_galera_nodes_the_cap_holds_and_concurrent_bumps_never_fail(cluster: &Cluster) {
    let name = format!("latchkey_galera_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::MysqlConnection::establish(&cluster.server_url(0)).unwrap();
    diesel::sql_query(format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .unwrap();
    let configure = |s: &mut latchkey::settings::Settings| {
        s.sessions_per_user = 5;
        s.session.touch_interval = chrono::TimeDelta::zero();
    };
    let a = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(0))),
        configure,
    )
    .await;
    let b = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(1))),
        configure,
    )
    .await;
    let user = a.register_user().await;

    // Act 1: 50 logins of one user race through both instances.
    let logins = (0..50).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let email = user.email.clone();
        async move { app.login(&email, PASSWORD).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(logins).await;

    // Assert 1: every login answered (a certification conflict is retried,
    // never a 500), and the cap holds on the cluster.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(a.session_rows(&user.user_id).await.len(), 5);

    // Act 2: the same session checked through both nodes at once, each check
    // writing (touch interval 0): concurrent updates of one row on two
    // nodes conflict at commit, which Galera reports as a deadlock.
    let token = b.login_token(&user.email, PASSWORD).await;
    let checks = (0..200).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let token = token.clone();
        async move { app.status(&token).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(checks).await;

    // Assert 2
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    drop((a, b));
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn);
}
