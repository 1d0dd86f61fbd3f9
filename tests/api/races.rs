//! Concurrency: the session cap, logout, sliding writes and password changes
//! under many simultaneous requests.

use chrono::TimeDelta;
use futures_util_free::join_all;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, api_time, metric, now_seconds, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    fifty_concurrent_logins_with_a_cap_of_three_leave_exactly_three_sessions,
    once_logout_has_answered_no_check_of_that_token_succeeds,
    a_hundred_concurrent_checks_of_one_token_writing_every_time_all_succeed,
    no_session_opened_with_the_old_password_survives_a_password_change,
    concurrent_logins_of_many_users_never_deadlock,
    concurrent_checks_of_many_tokens_each_get_their_own_answer,
);

/// A login of `email` with [`PASSWORD`], as a spawnable future of its status.
fn login_status(
    app: &TestApp,
    email: &str,
) -> impl std::future::Future<Output = u16> + Send + 'static {
    let request = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }));
    async move { request.send().await.unwrap().status().as_u16() }
}

/// `GET /auth/status` with `token`, as a spawnable future of its status.
fn status_code(
    app: &TestApp,
    token: &str,
) -> impl std::future::Future<Output = u16> + Send + 'static {
    let request = app.client.get(app.url("/auth/status")).bearer_auth(token);
    async move { request.send().await.unwrap().status().as_u16() }
}

/// `join_all` without another dependency: spawns every future and awaits them in order.
mod futures_util_free {
    pub async fn join_all<F>(futures: Vec<F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outputs = Vec::with_capacity(handles.len());
        for handle in handles {
            outputs.push(handle.await.expect("the task ran"));
        }
        outputs
    }
}

async fn fifty_concurrent_logins_with_a_cap_of_three_leave_exactly_three_sessions(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| {
        s.sessions_per_user = 3;
        s.pool.max_size = 10;
    })
    .await;
    let user = app.register_user().await;

    let logins = (0..50).map(|_| login_status(&app, &user.email)).collect();
    let statuses = join_all(logins).await;

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.session_rows(&user.user_id).await.len(), 3);
}

async fn once_logout_has_answered_no_check_of_that_token_succeeds(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.session.touch_interval = TimeDelta::zero()).await;
    let user = app.register_user().await;

    // Checks race with the logout...
    let checks: Vec<_> = (0..40).map(|_| status_code(&app, &user.token)).collect();
    let racing = tokio::spawn(join_all(checks));
    let logout = app.post_with_token("/auth/logout", &user.token).await;
    assert_eq!(logout.status(), 204);

    // ...and every check that starts after it has answered fails.
    for _ in 0..20 {
        assert_eq!(app.status(&user.token).await.status(), 401);
    }
    let raced = racing.await.unwrap();
    assert!(raced.iter().all(|s| *s == 200 || *s == 401), "{raced:?}");
    // No bump recreated the row.
    assert!(app.session_rows(&user.user_id).await.is_empty());
}

async fn a_hundred_concurrent_checks_of_one_token_writing_every_time_all_succeed(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.session.touch_interval = TimeDelta::zero();
        s.pool.max_size = 16;
    })
    .await;
    let user = app.register_user().await;
    let before = app.session_rows(&user.user_id).await[0].last_updated_at;

    let checks = (0..100).map(|_| status_code(&app, &user.token)).collect();
    let statuses = join_all(checks).await;

    // No deadlock or lock-wait error turns into a 500 or 503.
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].last_updated_at > before, "the session was not slid");
}

async fn no_session_opened_with_the_old_password_survives_a_password_change(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.sessions_per_user = 100;
        s.pool.max_size = 10;
    })
    .await;
    let user = app.register_user().await;
    let new_password = "a brand new passphrase";

    // Logins with the old password race with the change.
    let logins: Vec<_> = (0..30)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/auth/login");
            let body = json!({ "email": user.email, "password": PASSWORD });
            async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                let token = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|b| b["token"].as_str().map(str::to_owned));
                (status, token)
            }
        })
        .collect();
    let racing = tokio::spawn(join_all(logins));
    let change = app
        .put_json_with_token(
            "/auth/password",
            &user.token,
            &json!({ "current_password": PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(change.status(), 204);
    let raced = racing.await.unwrap();

    // Every login either failed or opened a session the change then ended:
    // only the session that made the change is left.
    assert!(
        raced.iter().all(|(s, _)| *s == 200 || *s == 401),
        "{raced:?}"
    );
    for token in raced.iter().filter_map(|(_, t)| t.as_deref()) {
        assert_eq!(
            app.status(token).await.status(),
            401,
            "a session from the old password survived"
        );
    }
    let rows = app.session_rows(&user.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, user.session_id);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 401);
    assert_eq!(app.login(&user.email, new_password).await.status(), 200);
}

async fn concurrent_logins_of_many_users_never_deadlock(backend: Backend) {
    // Neighbouring users logging in at once: on MySQL a range delete by
    // user_id in the login transaction took gap locks and deadlocked.
    let app = spawn_app_with(backend, |s| {
        s.sessions_per_user = 1;
        s.pool.max_size = 16;
    })
    .await;
    let mut emails = Vec::new();
    for _ in 0..40 {
        let user = app.register_user().await;
        // No session left: the first logins insert into empty index gaps.
        assert_eq!(
            app.post_with_token("/auth/logout", &user.token)
                .await
                .status(),
            204
        );
        emails.push(user.email);
    }

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let logins = emails
            .iter()
            .map(|email| login_status(&app, email))
            .collect();
        statuses.extend(join_all(logins).await);
    }

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.count_sessions().await, 40);
}

/// What a check of one token must answer.
#[derive(Clone)]
enum Expected {
    /// 200 with this user and session.
    Live { user_id: String, session_id: String },
    /// 401: expired (and then deleted), or never issued.
    Invalid,
}

/// `GET /auth/status` with `token`, as a spawnable future of its status and body.
fn status_and_body(
    app: &TestApp,
    token: &str,
) -> impl std::future::Future<Output = (u16, serde_json::Value)> + Send + 'static {
    let request = app.client.get(app.url("/auth/status")).bearer_auth(token);
    async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

async fn concurrent_checks_of_many_tokens_each_get_their_own_answer(backend: Backend) {
    // One database thread, so that checks arriving while it is busy are
    // answered together by one query; and a write on every check.
    let app = spawn_app_with(backend, |s| {
        s.pool.max_size = 1;
        s.session.touch_interval = TimeDelta::zero();
    })
    .await;
    let an_hour_ago = now_seconds() - TimeDelta::hours(1);
    let long_ago = now_seconds() - app.settings.session.absolute_timeout - TimeDelta::days(1);
    let mut live = Vec::new();
    for i in 0..20 {
        let user_id = app.insert_user(&format!("live-{i}@example.com")).await;
        let (session_id, token) = app.insert_session(&user_id).await;
        app.set_session_times(&session_id, an_hour_ago, an_hour_ago)
            .await;
        live.push((user_id, session_id, token));
    }
    let mut expired = Vec::new();
    for i in 0..5 {
        let user_id = app.insert_user(&format!("expired-{i}@example.com")).await;
        let (session_id, token) = app.insert_session(&user_id).await;
        app.set_session_times(&session_id, long_ago, long_ago).await;
        expired.push((user_id, session_id, token));
    }
    let never_issued: Vec<String> = (0..5)
        .map(|_| {
            latchkey::domain::SessionToken::generate()
                .0
                .expose()
                .to_owned()
        })
        .collect();
    // Every live token three times (a token checked twice in one batch),
    // every expired and unknown one once.
    let mut checks: Vec<(String, Expected)> = Vec::new();
    for _ in 0..3 {
        for (user_id, session_id, token) in &live {
            let expected = Expected::Live {
                user_id: user_id.clone(),
                session_id: session_id.clone(),
            };
            checks.push((token.clone(), expected));
        }
    }
    for token in expired.iter().map(|(_, _, t)| t).chain(&never_issued) {
        checks.push((token.clone(), Expected::Invalid));
    }

    // Rounds of all of them at once, until some query answered more than
    // one check (the first round almost always does).
    let mut rounds = 0;
    let (queries, answered) = loop {
        rounds += 1;
        let started = now_seconds();
        let requests = checks
            .iter()
            .map(|(token, _)| status_and_body(&app, token))
            .collect();
        let answers = join_all(requests).await;

        for ((_, expected), (status, body)) in checks.iter().zip(&answers) {
            match expected {
                Expected::Live {
                    user_id,
                    session_id,
                } => {
                    assert_eq!(*status, 200, "{body}");
                    assert_eq!(body["user"]["id"], user_id.as_str(), "{body}");
                    assert_eq!(body["session"]["id"], session_id.as_str(), "{body}");
                    assert!(api_time(&body["session"]["last_updated_at"]) >= started);
                }
                Expected::Invalid => {
                    assert_eq!(*status, 401, "{body}");
                    assert_eq!(body["error"], "invalid_token", "{body}");
                }
            }
        }
        // Every live session slid, every expired one deleted.
        for (user_id, session_id, _) in &live {
            let rows = app.session_rows(user_id).await;
            assert_eq!(rows.len(), 1);
            assert_eq!(&rows[0].id, session_id);
            assert!(rows[0].last_updated_at >= started, "{:?}", rows[0]);
        }
        for (user_id, _, _) in &expired {
            assert!(app.session_rows(user_id).await.is_empty());
        }

        let text = app.metrics_text().await;
        let queries = metric(&text, "latchkey_token_checks_per_query_count", &[]).unwrap();
        let answered = metric(&text, "latchkey_token_checks_per_query_sum", &[]).unwrap();
        if queries < answered || rounds == 5 {
            break (queries, answered);
        }
    };
    let total = (checks.len() * rounds) as f64;
    assert_eq!(
        answered, total,
        "every check was answered by exactly one query"
    );
    assert!(
        queries < answered,
        "{rounds} rounds of {} concurrent checks never shared a query",
        checks.len()
    );
}

/// MySQL and PostgreSQL (SQLite locks the whole database, so it never
/// deadlocks): a batch that slides two sessions of one user locks them in
/// order (InnoDB: key order; PostgreSQL: the order of the rows in the heap,
/// which the arranging updates below make the same), and a transaction
/// holding the second while asking for the first closes a cycle. InnoDB
/// rolls back the lighter side, the slide; PostgreSQL the side whose wait
/// first reaches `deadlock_timeout`, the slide again (40P01). The batch
/// retries it, and its checks still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_slide_loses_a_deadlock_retries_it_mysql() {
    a_batch_whose_slide_loses_a_deadlock_retries_it(Backend::Mysql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_slide_loses_a_deadlock_retries_it_postgres() {
    a_batch_whose_slide_loses_a_deadlock_retries_it(Backend::Postgres).await
}

async fn a_batch_whose_slide_loses_a_deadlock_retries_it(backend: Backend) {
    use diesel::prelude::*;
    use latchkey::db::schema::authentication_tokens as tokens;
    use latchkey::db::{PoolOptions, build_pool};
    use latchkey::domain::TokenDigest;
    use latchkey::store::token_check::{Check, Touch, authenticate};
    use std::sync::mpsc;

    let app = spawn_app_with(backend, |_| {}).await;
    let user = app.insert_user("two-sessions@example.com").await;
    // The slide locks rows in primary-key order, by token digest:
    // x is the session whose digest sorts first, so the slide locks x first.
    let first = app.insert_session(&user).await;
    let second = app.insert_session(&user).await;
    let digest = |token: &str| TokenDigest::of_presented(token).unwrap();
    let ((x, x_token), (y, y_token)) = if digest(&first.1).as_bytes() < digest(&second.1).as_bytes()
    {
        (first, second)
    } else {
        (second, first)
    };
    let an_hour_ago = now_seconds() - TimeDelta::hours(1);
    app.set_session_times(&x, an_hour_ago, an_hour_ago).await;
    app.set_session_times(&y, an_hour_ago, an_hour_ago).await;
    let other = app.insert_user("other@example.com").await;
    let mut heavy = Vec::new();
    for _ in 0..10 {
        heavy.push(app.insert_session(&other).await.0);
    }
    let pool = build_pool(
        &app.settings.database_url,
        &PoolOptions {
            max_size: 3,
            min_idle: Some(0),
            acquire_timeout: std::time::Duration::from_secs(5),
        },
    );

    // A: a transaction that has written ten rows (so it is the heavier
    // side), then holds y until told to ask for x.
    let (holds_y, a_holds_y) = mpsc::channel();
    let (ask_for_x, go) = mpsc::channel::<()>();
    let a = std::thread::spawn({
        let (pool, x, y) = (pool.clone(), x.clone(), y.clone());
        move || {
            let mut conn = pool.get().unwrap();
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                // One row at a time, by primary key: a multi-row UPDATE may
                // scan (and so lock) the whole small table, x included.
                for id in &heavy {
                    diesel::update(tokens::table.find(id))
                        .set(tokens::label.eq("a"))
                        .execute(conn)?;
                }
                diesel::update(tokens::table.find(&y))
                    .set(tokens::label.eq("a"))
                    .execute(conn)?;
                holds_y.send(()).unwrap();
                go.recv().unwrap();
                diesel::update(tokens::table.find(&x))
                    .set(tokens::label.eq("a"))
                    .execute(conn)?;
                Ok(())
            })
        }
    });
    a_holds_y.recv().unwrap();

    // B: one batch checking x and y, both due a slide.
    let b = std::thread::spawn({
        let (pool, policy) = (pool.clone(), app.settings.session);
        move || {
            let mut conn = pool.get().unwrap();
            let checks = [x_token, y_token].map(|token| Check {
                digest: TokenDigest::of_presented(&token).unwrap(),
                touch: Touch::IfStale,
            });
            authenticate(&mut conn, &checks, &policy, latchkey::domain::now())
        }
    });
    // Once B has slid x and waits for y, A asks for x. (MariaDB's
    // INNODB_TRX does not list a transaction in a lock wait.)
    let mut observer = pool.get().unwrap();
    let waiting_slides = match backend {
        // A slide that has run for 200 ms is waiting for a lock (y).
        Backend::Mysql => {
            "(SELECT COUNT(*) FROM information_schema.PROCESSLIST \
              WHERE INFO LIKE 'UPDATE authentication_tokens SET last_updated_at%' \
              AND TIME_MS > 200)"
        }
        Backend::Postgres => {
            "(SELECT COUNT(*) FROM pg_stat_activity \
              WHERE query LIKE 'UPDATE authentication_tokens SET last_updated_at%' \
              AND wait_event_type = 'Lock')"
        }
        Backend::Sqlite => unreachable!("SQLite never deadlocks"),
    };
    let mut waiting = || {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            waiting_slides,
        ))
        .get_result::<i64>(&mut **observer)
        .unwrap()
    };
    let mut waited = 0;
    while waiting() == 0 {
        waited += 1;
        assert!(waited < 500, "the batch never waited for y");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ask_for_x.send(()).unwrap();

    a.join().unwrap().expect("A, the heavier side, commits");
    let answers = b.join().unwrap().expect("the batch retried its slide");
    let ids: Vec<_> = answers
        .iter()
        .map(|answer| answer.as_ref().map(|(session, _)| session.id.clone()))
        .collect();
    assert_eq!(ids, [Some(x.clone()), Some(y.clone())]);
    let rows = app.session_rows(&user).await;
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row.label.as_deref(), Some("a"), "A committed");
        assert!(row.last_updated_at > an_hour_ago, "{row:?} was slid");
    }
}
