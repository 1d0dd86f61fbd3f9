//! The security event trail: what users see of their own account
//! (`GET /auth/events`), what admins see (`GET /admin/users/{id}/events`),
//! suspension, retention by the reaper, and what an account's deletion
//! leaves behind.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use latchkey::db::schema::{authentication_tokens, one_time_codes, outbox, security_events, users};
use latchkey::delivery::message::MessageUser;
use latchkey::domain::Purpose;
use latchkey::store::codes::{CodeSpec, issue_and_queue};
use latchkey::store::events::{EventKind, NewEvent, Origin};
use reqwest::Method;
use reqwest::header::USER_AGENT;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, api_time, assert_error, eventually, now_seconds, spawn_app,
    spawn_app_with,
};
use crate::on_both_backends;

on_both_backends!(
    a_users_own_events_list_what_they_did_newest_first_with_where_from_and_no_secret,
    own_events_page_with_next_before_without_repeats_or_gaps,
    admin_actions_are_recorded_on_the_target_with_the_admins_id,
    suspension_ends_every_session_and_refuses_logins_like_a_wrong_password,
    the_only_admin_cannot_be_suspended,
    the_reaper_deletes_old_events_and_expired_codes_and_keeps_recent_ones,
    deleting_an_admin_leaves_no_row_naming_them_and_records_who_deleted_them,
);

/// The User-Agent every request of these tests sends.
const AGENT: &str = "EventsSpec/1.0 (latchkey tests)";
const WRONG_PASSWORD: &str = "not the password at all";

/// A row of `security_events`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = security_events)]
pub(crate) struct EventRow {
    pub id: String,
    pub user_id: Option<String>,
    pub kind: String,
    pub session_id: Option<String>,
    pub actor_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Every stored event of a user, newest first.
pub(crate) async fn event_rows(app: &TestApp, user_id: &str) -> Vec<EventRow> {
    let user_id = user_id.to_owned();
    app.with_db(move |conn| {
        security_events::table
            .filter(security_events::user_id.eq(user_id))
            .order(security_events::id.desc())
            .select(EventRow::as_select())
            .load(conn)
            .expect("event rows")
    })
    .await
}

/// The `type`s of a JSON event list, in order.
pub(crate) fn types(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {events}"))
        .iter()
        .map(|e| e["type"].as_str().expect("a type"))
        .collect()
}

/// Sends a request with [`AGENT`] as its User-Agent.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header(USER_AGENT, AGENT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request sent")
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    send(
        app,
        Method::POST,
        "/auth/login",
        None,
        Some(&json!({ "email": email, "password": password })),
    )
    .await
}

async fn json_body(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn patch_user(app: &TestApp, token: &str, user_id: &str, body: Value) -> reqwest::Response {
    send(
        app,
        Method::PATCH,
        &format!("/admin/users/{user_id}"),
        Some(token),
        Some(&body),
    )
    .await
}

async fn event_exists(app: &TestApp, id: String) -> bool {
    app.with_db(move |conn| {
        security_events::table
            .find(id)
            .count()
            .get_result::<i64>(conn)
            .expect("count")
            == 1
    })
    .await
}

async fn code_exists(app: &TestApp, code_hash: Vec<u8>) -> bool {
    app.with_db(move |conn| {
        one_time_codes::table
            .find(code_hash)
            .count()
            .get_result::<i64>(conn)
            .expect("count")
            == 1
    })
    .await
}

/// How many rows name the user, in: users, authentication_tokens,
/// one_time_codes, outbox, security_events.user_id, security_events.actor_id.
async fn rows_naming(app: &TestApp, user_id: &str) -> [i64; 6] {
    let uid = user_id.to_owned();
    app.with_db(move |conn| {
        [
            users::table.find(&uid).count().get_result(conn),
            authentication_tokens::table
                .filter(authentication_tokens::user_id.eq(&uid))
                .count()
                .get_result(conn),
            one_time_codes::table
                .filter(one_time_codes::user_id.eq(&uid))
                .count()
                .get_result(conn),
            outbox::table
                .filter(outbox::user_id.eq(&uid))
                .count()
                .get_result(conn),
            security_events::table
                .filter(security_events::user_id.eq(&uid))
                .count()
                .get_result(conn),
            security_events::table
                .filter(security_events::actor_id.eq(&uid))
                .count()
                .get_result(conn),
        ]
        .map(|count| count.expect("count"))
    })
    .await
}

async fn a_users_own_events_list_what_they_did_newest_first_with_where_from_and_no_secret(
    backend: Backend,
) {
    // Arrange: register, a wrong password, a login, a logout of that login.
    let app = spawn_app(backend).await;
    let email = format!("events-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = json_body(
        send(
            &app,
            Method::POST,
            "/auth/register",
            None,
            Some(&json!({ "email": email, "password": PASSWORD })),
        )
        .await,
        201,
    )
    .await;
    let token = registered["token"].as_str().unwrap().to_owned();
    let first_session = registered["session_id"].as_str().unwrap().to_owned();
    let user_id = registered["user"]["id"].as_str().unwrap().to_owned();
    assert_error(
        login(&app, &email, WRONG_PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let logged_in = json_body(login(&app, &email, PASSWORD).await, 200).await;
    let second_token = logged_in["token"].as_str().unwrap().to_owned();
    let second_session = logged_in["session_id"].as_str().unwrap().to_owned();
    let logout = send(
        &app,
        Method::POST,
        "/auth/logout",
        Some(&second_token),
        None,
    )
    .await;
    assert_eq!(logout.status(), 204);

    // Act
    let response = send(&app, Method::GET, "/auth/events", Some(&token), None).await;

    // Assert
    assert_eq!(response.status(), 200);
    let raw = response.text().await.unwrap();
    for secret in [PASSWORD, WRONG_PASSWORD, &token, &second_token] {
        assert!(!raw.contains(secret), "a secret in the events: {raw}");
    }
    let body: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["next_before"], Value::Null, "{body}");
    let events = &body["events"];
    assert_eq!(
        types(events),
        ["logout", "login_succeeded", "login_failed", "registered"],
        "{body}"
    );
    let sessions = [
        json!(second_session),
        json!(second_session),
        Value::Null,
        json!(first_session),
    ];
    let keys: BTreeSet<&str> = [
        "id",
        "type",
        "session_id",
        "actor_id",
        "client_ip",
        "user_agent",
        "created_at",
    ]
    .into_iter()
    .collect();
    for (event, session) in events.as_array().unwrap().iter().zip(sessions) {
        let listed: BTreeSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(listed, keys, "{event}");
        assert_eq!(event["session_id"], session, "{event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], AGENT, "{event}");
        assert_eq!(event["actor_id"], Value::Null, "{event}");
    }
    let times: Vec<NaiveDateTime> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| api_time(&e["created_at"]))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // The listing is exactly the stored rows, newest first; reading them
    // recorded nothing.
    let rows = event_rows(&app, &user_id).await;
    let listed_ids: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let stored_ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(listed_ids, stored_ids);
}

async fn own_events_page_with_next_before_without_repeats_or_gaps(backend: Backend) {
    // Arrange: 7 events of the user (registered, 3 failed and 3 good
    // logins), with another user's events in between.
    let app = spawn_app(backend).await;
    let user = app.register_user().await;
    let other = app.register_user().await;
    for _ in 0..3 {
        assert_eq!(login(&app, &user.email, WRONG_PASSWORD).await.status(), 401);
        assert_eq!(login(&app, &user.email, PASSWORD).await.status(), 200);
        assert_eq!(login(&app, &other.email, PASSWORD).await.status(), 200);
    }
    let stored: Vec<String> = event_rows(&app, &user.user_id)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored.len(), 7);

    // Act: page through with limit=2.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/auth/events?limit=2&before={id}"),
            None => "/auth/events?limit=2".to_owned(),
        };
        let body = json_body(app.get_with_token(&path, &user.token).await, 200).await;
        let page: Vec<String> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        pages.push(page.clone());
        match body["next_before"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), page.last().map(String::as_str), "{body}");
                before = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 2, 1]);
    let walked: Vec<String> = pages.concat();
    assert_eq!(walked, stored, "every event once, newest first");
    for (limit, code) in [("0", "invalid_limit"), ("501", "invalid_limit")] {
        let response = app
            .get_with_token(&format!("/auth/events?limit={limit}"), &user.token)
            .await;
        assert_error(response, 422, code).await;
    }
    let all = json_body(
        app.get_with_token("/auth/events?limit=500", &user.token)
            .await,
        200,
    )
    .await;
    assert_eq!(all["events"].as_array().unwrap().len(), 7);
    assert_eq!(all["next_before"], Value::Null);
}

async fn admin_actions_are_recorded_on_the_target_with_the_admins_id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let bystander = app.register_user().await;

    // Act: suspend, restore, grant admin, end every session.
    for body in [
        json!({ "disabled": true }),
        json!({ "disabled": false }),
        json!({ "admin": true }),
    ] {
        let response = patch_user(&app, &admin.token, &user.user_id, body.clone()).await;
        assert_eq!(response.status(), 200, "{body}");
    }
    app.insert_session(&user.user_id).await;
    let revoked = send(
        &app,
        Method::DELETE,
        &format!("/admin/users/{}/sessions", user.user_id),
        Some(&admin.token),
        None,
    )
    .await;
    assert_eq!(revoked.status(), 204);
    let events_path = format!("/admin/users/{}/events", user.user_id);
    let body = json_body(app.get_with_token(&events_path, &admin.token).await, 200).await;

    // Assert
    let events = &body["events"];
    assert_eq!(
        types(events),
        [
            "logout_all",
            "admin_granted",
            "account_enabled",
            "account_disabled",
            "registered"
        ],
        "{body}"
    );
    for event in &events.as_array().unwrap()[..4] {
        assert_eq!(event["actor_id"], admin.user_id.as_str(), "{event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], AGENT, "{event}");
    }
    assert_eq!(events[4]["actor_id"], Value::Null, "{body}");
    assert!(app.session_rows(&user.user_id).await.is_empty());
    // Recorded on the target, not on the admin.
    let own = json_body(
        app.get_with_token(
            &format!("/admin/users/{}/events", admin.user_id),
            &admin.token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(types(&own["events"]), ["registered"], "{own}");
    let admin_id = admin.user_id.clone();
    let acted: Vec<(Option<String>, String)> = app
        .with_db(move |conn| {
            security_events::table
                .filter(security_events::actor_id.eq(admin_id))
                .order(security_events::id.asc())
                .select((security_events::user_id, security_events::kind))
                .load(conn)
                .unwrap()
        })
        .await;
    let target = Some(user.user_id.clone());
    assert_eq!(
        acted,
        [
            (target.clone(), "account_disabled".to_owned()),
            (target.clone(), "account_enabled".to_owned()),
            (target.clone(), "admin_granted".to_owned()),
            (target, "logout_all".to_owned()),
        ]
    );
    // Only admins may read them, and only of users who exist.
    assert_error(
        app.get_with_token(&events_path, &bystander.token).await,
        403,
        "forbidden",
    )
    .await;
    let unknown = format!("/admin/users/{}/events", uuid::Uuid::new_v4());
    assert_error(
        app.get_with_token(&unknown, &admin.token).await,
        404,
        "not_found",
    )
    .await;
}

async fn suspension_ends_every_session_and_refuses_logins_like_a_wrong_password(backend: Backend) {
    // Arrange: a user with two sessions; the answer to a wrong password.
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, PASSWORD).await;
    let wrong = json_body(login(&app, &user.email, WRONG_PASSWORD).await, 401).await;

    // Act
    let suspended = json_body(
        patch_user(
            &app,
            &admin.token,
            &user.user_id,
            json!({ "disabled": true }),
        )
        .await,
        200,
    )
    .await;

    // Assert
    assert_eq!(suspended["id"], user.user_id.as_str(), "{suspended}");
    assert_eq!(suspended["disabled"], true, "{suspended}");
    assert_eq!(suspended["active_sessions"], 0, "{suspended}");
    assert!(app.disabled_at(&user.user_id).await.is_some());
    assert!(app.session_rows(&user.user_id).await.is_empty());
    for token in [&user.token, &second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    let refused = json_body(login(&app, &user.email, PASSWORD).await, 401).await;
    assert_eq!(
        refused, wrong,
        "a suspension must not be told from a wrong password"
    );
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_eq!(app.status(&admin.token).await.status(), 200);

    // Act: restore.
    let restored = json_body(
        patch_user(
            &app,
            &admin.token,
            &user.user_id,
            json!({ "disabled": false }),
        )
        .await,
        200,
    )
    .await;

    // Assert
    assert_eq!(restored["disabled"], false, "{restored}");
    assert_eq!(app.disabled_at(&user.user_id).await, None);
    let token = app.login_token(&user.email, PASSWORD).await;
    assert_eq!(app.status(&token).await.status(), 200);
}

async fn the_only_admin_cannot_be_suspended(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    app.register_user().await;

    // Act
    let response = patch_user(
        &app,
        &admin.token,
        &admin.user_id,
        json!({ "disabled": true }),
    )
    .await;

    // Assert
    assert_error(response, 409, "last_admin").await;
    assert_eq!(app.disabled_at(&admin.user_id).await, None);
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(app.session_rows(&admin.user_id).await.len(), 1);
    assert_eq!(app.status(&admin.token).await.status(), 200);
    let kinds: Vec<String> = event_rows(&app, &admin.user_id)
        .await
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["registered"]);
}

async fn the_reaper_deletes_old_events_and_expired_codes_and_keeps_recent_ones(backend: Backend) {
    // Arrange: with the default 90-day retention, an event of 100 days ago
    // and one of yesterday; an expired code and a live one.
    let app = spawn_app_with(backend, |s| s.reap_interval = Duration::from_millis(200)).await;
    assert_eq!(app.settings.account.event_retention, TimeDelta::days(90));
    let user = app.register_user().await;
    let now = now_seconds();
    let old_event = uuid::Uuid::new_v4().to_string();
    let recent_event = uuid::Uuid::new_v4().to_string();
    let expired_code = vec![0xA5_u8; 32];
    let live_code = vec![0x5A_u8; 32];
    {
        let (uid, old, recent) = (
            user.user_id.clone(),
            old_event.clone(),
            recent_event.clone(),
        );
        let (expired, live) = (expired_code.clone(), live_code.clone());
        app.with_db(move |conn| {
            for (id, at) in [
                (old, now - TimeDelta::days(100)),
                (recent, now - TimeDelta::days(1)),
            ] {
                diesel::insert_into(security_events::table)
                    .values((
                        security_events::id.eq(id),
                        security_events::user_id.eq(Some(&uid)),
                        security_events::kind.eq("login_failed"),
                        security_events::created_at.eq(at),
                    ))
                    .execute(conn)
                    .unwrap();
            }
            for (hash, purpose, expires_at) in [
                (expired, "password_reset", now - TimeDelta::hours(1)),
                (live, "email_verification", now + TimeDelta::hours(1)),
            ] {
                diesel::insert_into(one_time_codes::table)
                    .values((
                        one_time_codes::code_hash.eq(hash),
                        one_time_codes::user_id.eq(&uid),
                        one_time_codes::purpose.eq(purpose),
                        one_time_codes::created_at.eq(now - TimeDelta::hours(2)),
                        one_time_codes::expires_at.eq(expires_at),
                    ))
                    .execute(conn)
                    .unwrap();
            }
        })
        .await;
    }
    // Act: wait for the reaper.
    let reaped = eventually(Duration::from_secs(10), || {
        let (app, old, expired) = (&app, old_event.clone(), expired_code.clone());
        async move { !event_exists(app, old).await && !code_exists(app, expired).await }
    })
    .await;

    // Assert
    assert!(reaped, "the old event and the expired code are still there");
    assert!(
        event_exists(&app, recent_event).await,
        "the recent event was reaped"
    );
    assert!(
        code_exists(&app, live_code).await,
        "the live code was reaped"
    );
    let kinds: Vec<String> = event_rows(&app, &user.user_id)
        .await
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "registered").count(), 1);
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

async fn deleting_an_admin_leaves_no_row_naming_them_and_records_who_deleted_them(
    backend: Backend,
) {
    // Arrange: bob is an admin who suspended and restored carol, has two
    // sessions, a reset code with its queued message, and events of his own.
    let app = spawn_app(backend).await;
    let alice = app.register_admin().await;
    let bob = app.register_admin().await;
    let carol = app.register_user().await;
    let bob_second = app.login_token(&bob.email, PASSWORD).await;
    for disabled in [true, false] {
        let response = patch_user(
            &app,
            &bob.token,
            &carol.user_id,
            json!({ "disabled": disabled }),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let recipient = MessageUser {
        id: bob.user_id.clone(),
        email: bob.email.clone(),
    };
    app.with_db(move |conn| {
        let origin = Origin::default();
        let event = NewEvent::new(EventKind::PasswordResetRequested, &recipient.id, &origin);
        let spec = CodeSpec {
            purpose: Purpose::PasswordReset,
            ttl: TimeDelta::minutes(30),
            link_template: None,
        };
        issue_and_queue(conn, &recipient, spec, true, event, latchkey::domain::now()).unwrap();
    })
    .await;
    // users, sessions, codes, outbox, own events (registered,
    // login_succeeded, password_reset_requested), acted on carol.
    assert_eq!(rows_naming(&app, &bob.user_id).await, [1, 2, 1, 1, 3, 2]);

    // Act
    let response = send(
        &app,
        Method::DELETE,
        &format!("/admin/users/{}", bob.user_id),
        Some(&alice.token),
        None,
    )
    .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(rows_naming(&app, &bob.user_id).await, [0; 6]);
    for token in [&bob.token, &bob_second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    let deleted: Vec<(Option<String>, Option<String>, Option<String>)> = app
        .with_db(|conn| {
            security_events::table
                .filter(security_events::kind.eq("account_deleted"))
                .select((
                    security_events::user_id,
                    security_events::actor_id,
                    security_events::client_ip,
                ))
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(
        deleted,
        [(
            None,
            Some(alice.user_id.clone()),
            Some("127.0.0.1".to_owned())
        )]
    );
    // Carol's events stay, no longer naming the admin who acted.
    let carols: Vec<(String, Option<String>)> = event_rows(&app, &carol.user_id)
        .await
        .into_iter()
        .map(|r| (r.kind, r.actor_id))
        .collect();
    assert_eq!(
        carols,
        [
            ("account_enabled".to_owned(), None),
            ("account_disabled".to_owned(), None),
            ("registered".to_owned(), None),
        ]
    );
    assert_error(
        app.get_with_token(
            &format!("/admin/users/{}/events", bob.user_id),
            &alice.token,
        )
        .await,
        404,
        "not_found",
    )
    .await;
}
