//! latchkey on a three-node MariaDB Galera cluster that the test starts
//! itself (Debian's mariadb-server and galera-4; each node its own data
//! directory and loopback ports, run as the `mysql` user, stopped and
//! removed afterwards; never the machine's own MariaDB). Two latchkey
//! instances, each on a different node, must agree at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use latchkey::db::DatabaseUrl;
use serde_json::json;

use crate::galera_cluster::{Cluster, Haproxy};
use crate::helpers::{PASSWORD, TestApp, assert_error, spawn_app_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_two_galera_nodes_agree_at_once_and_hold_the_cap() {
    // Arrange: the cluster, an empty database on it, latchkey A on node 0
    // and B on node 1.
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let name = format!("latchkey_galera_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::MysqlConnection::establish(&cluster.server_url(0)).unwrap();
    diesel::sql_query(format!("CREATE DATABASE `{name}`"))
        .execute(&mut conn)
        .unwrap();
    // Started together on the empty database, as replicas are: both
    // migrate it through their own node (Galera refuses GET_LOCK).
    let (a, b) = tokio::join!(
        spawn_app_on(
            DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(0))),
            |_| {},
        ),
        spawn_app_on(
            DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(1))),
            |_| {},
        )
    );

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

    let mut cluster = cluster;
    a_node_killed_under_load_through_haproxy_loses_no_acknowledged_write(&mut cluster).await;
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

    // Act 3: sessions logged out through B while A bumps them: the delete
    // and the updates of one row conflict across nodes.
    let mut logouts = Vec::new();
    let mut bumps = Vec::new();
    for _ in 0..10 {
        let token = a.login_token(&user.email, PASSWORD).await;
        let racing = (0..10).map(|_| a.status(&token));
        let (statuses, logout) = tokio::join!(
            futures_util::future::join_all(racing),
            b.post_with_token("/auth/logout", &token)
        );
        bumps.extend(statuses.into_iter().map(|r| r.status().as_u16()));
        logouts.push(logout.status().as_u16());
        assert_error(a.status(&token).await, 401, "invalid_token").await;
    }

    // Assert 3: every logout went through; each check saw the session
    // alive or gone, never an error.
    assert!(logouts.iter().all(|s| *s == 204), "{logouts:?}");
    assert!(bumps.iter().all(|s| matches!(s, 200 | 401)), "{bumps:?}");

    drop((a, b));
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn);
}

/// What a request under load answered: its status and, for a 503, whether
/// it said when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    status: u16,
    retry_after: bool,
    /// How long it took, in milliseconds.
    took: u128,
}

impl Answer {
    fn of(response: &reqwest::Response, sent: std::time::Instant) -> Self {
        Self {
            status: response.status().as_u16(),
            retry_after: response.headers().contains_key("retry-after"),
            took: sent.elapsed().as_millis(),
        }
    }
}

/// The writes latchkey acknowledged while the node was down.
#[derive(Default)]
struct Acknowledged {
    logins: Vec<String>,
    logouts: Vec<String>,
    /// (email, the new password)
    password_changes: Vec<(String, String)>,
}

/// Two instances, both through HAProxy, under a steady load of checks,
/// logins, logouts and password changes; one node is SIGKILLed, then
/// started again while the load goes on.
async fn a_node_killed_under_load_through_haproxy_loses_no_acknowledged_write(
    cluster: &mut Cluster,
) {
    // Arrange
    let haproxy = Haproxy::start(cluster);
    let name = format!("latchkey_galera_{}", uuid::Uuid::new_v4().simple());
    cluster.execute(0, &format!("CREATE DATABASE `{name}`"));
    let through_haproxy = DatabaseUrl::Mysql(format!("{}/{name}", haproxy.server_url()));
    let configure = |s: &mut latchkey::settings::Settings| {
        s.pool.max_size = 6;
        s.pool.min_idle = Some(6);
        // Well above what the load logs in, so no session is evicted.
        s.sessions_per_user = 100;
    };
    let a = Arc::new(spawn_app_on(through_haproxy.clone(), configure).await);
    let b = Arc::new(spawn_app_on(through_haproxy, configure).await);
    let mut checked = Vec::new();
    for _ in 0..8 {
        checked.push(a.register_user().await.token);
    }
    let mut logging_in = Vec::new();
    for _ in 0..40 {
        logging_in.push(b.register_user().await.email);
    }
    let mut changing = Vec::new();
    for _ in 0..40 {
        let user = a.register_user().await;
        changing.push((user.email, user.token));
    }
    let stop = Arc::new(AtomicBool::new(false));

    // Act: the load, on both instances ...
    let mut checkers = Vec::new();
    for worker in 0..6 {
        let (app, tokens, stop) = (
            Arc::clone(if worker % 2 == 0 { &a } else { &b }),
            checked.clone(),
            Arc::clone(&stop),
        );
        checkers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for token in tokens.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let sent = std::time::Instant::now();
                answers.push(Answer::of(&app.status(token).await, sent));
            }
            answers
        }));
    }
    let sessions = tokio::spawn(log_in_and_out(
        [Arc::clone(&a), Arc::clone(&b)],
        logging_in,
        Arc::clone(&stop),
    ));
    let passwords = tokio::spawn(change_passwords(
        [Arc::clone(&b), Arc::clone(&a)],
        changing,
        Arc::clone(&stop),
    ));
    // ... while node 1 is killed after 3 s and started again 4 s later;
    // the load goes on for 5 s more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_the_victim = tokio::task::block_in_place(|| cluster.connections_to(1, &name));
    assert!(on_the_victim > 0, "HAProxy sent no connection to node 1");
    tokio::task::block_in_place(|| cluster.kill(1));
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| cluster.restart(1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let mut checks = Vec::new();
    for checker in checkers {
        checks.extend(checker.await.unwrap());
    }
    let (session_answers, mut acknowledged) = sessions.await.unwrap();
    let (password_answers, password_changes) = passwords.await.unwrap();
    acknowledged.password_changes = password_changes;

    // Assert: checks kept answering; a few 503s, each with Retry-After,
    // and never anything else.
    let unavailable = checks.iter().filter(|a| a.status == 503).count();
    let slowest = checks.iter().map(|a| a.took).max().unwrap_or(0);
    eprintln!(
        "galera fault: {} checks ({on_the_victim} connections on the killed node), {unavailable} answered 503, the slowest in {slowest} ms; \
         {} logins, {} logouts, {} password changes acknowledged",
        checks.len(),
        acknowledged.logins.len(),
        acknowledged.logouts.len(),
        acknowledged.password_changes.len(),
    );
    for answer in checks
        .iter()
        .chain(&session_answers)
        .chain(&password_answers)
    {
        assert!(
            matches!(answer.status, 200 | 204) || (answer.status == 503 && answer.retry_after),
            "{answer:?}"
        );
    }
    assert!(checks.len() > 500, "too little load: {}", checks.len());
    assert!(
        unavailable <= checks.len() / 50,
        "{unavailable} of {} checks answered 503",
        checks.len()
    );
    assert!(acknowledged.logins.len() >= 20 && acknowledged.password_changes.len() >= 10);

    // The node rejoined ...
    tokio::task::block_in_place(|| cluster.wait_synced(1));
    assert_eq!(cluster.size_seen_by(1), 3, "node 1 is back in the cluster");
    // ... and, through it as through HAProxy, no acknowledged write is lost.
    let on_node_1 = spawn_app_on(
        DatabaseUrl::Mysql(format!("{}/{name}", cluster.server_url(1))),
        |_| {},
    )
    .await;
    for app in [&on_node_1, a.as_ref()] {
        for token in &acknowledged.logins {
            let live = !acknowledged.logouts.contains(token);
            let expected = if live { 200 } else { 401 };
            assert_eq!(app.status(token).await.status(), expected, "{token}");
        }
        for (email, new_password) in &acknowledged.password_changes {
            assert_eq!(app.login(email, new_password).await.status(), 200);
            assert_eq!(app.login(email, PASSWORD).await.status(), 401);
        }
    }

    drop((on_node_1, a, b, haproxy));
    cluster.execute(0, &format!("DROP DATABASE IF EXISTS `{name}`"));
}

/// Logs users in, in turn, and logs every other new session out again.
async fn log_in_and_out(
    apps: [Arc<TestApp>; 2],
    emails: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (Vec<Answer>, Acknowledged) {
    let mut answers = Vec::new();
    let mut acknowledged = Acknowledged::default();
    for (n, email) in emails.iter().cycle().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = std::time::Instant::now();
        let response = apps[n % 2].login(email, PASSWORD).await;
        answers.push(Answer::of(&response, sent));
        if response.status() != 200 {
            continue;
        }
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        acknowledged.logins.push(token.clone());
        if n % 2 == 0 {
            let sent = std::time::Instant::now();
            let response = apps[(n + 1) % 2]
                .post_with_token("/auth/logout", &token)
                .await;
            answers.push(Answer::of(&response, sent));
            if response.status() == 204 {
                acknowledged.logouts.push(token);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (answers, acknowledged)
}

/// Changes each user's password once, in turn, until stopped.
async fn change_passwords(
    apps: [Arc<TestApp>; 2],
    users: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> (Vec<Answer>, Vec<(String, String)>) {
    let mut answers = Vec::new();
    let mut changed = Vec::new();
    for (n, (email, token)) in users.into_iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let new_password = format!("a new passphrase number {n} for the cluster");
        let sent = std::time::Instant::now();
        let response = apps[n % 2]
            .put_json_with_token(
                "/auth/password",
                &token,
                &json!({ "current_password": PASSWORD, "new_password": new_password }),
            )
            .await;
        answers.push(Answer::of(&response, sent));
        if response.status() == 204 {
            changed.push((email, new_password));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (answers, changed)
}
