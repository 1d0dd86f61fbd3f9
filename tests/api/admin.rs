//! `/admin/...`: user and session management for users with the admin flag.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, now_seconds, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    every_admin_route_is_403_forbidden_for_a_non_admin_and_changes_nothing,
    every_admin_route_is_401_without_a_token,
    listing_users_pages_through_everyone_in_creation_order_without_gaps_or_duplicates,
    when_the_users_fill_the_last_page_exactly_its_next_after_is_null,
    active_sessions_counts_only_live_sessions,
    a_limit_of_0_or_501_is_422_invalid_limit_and_1_or_500_is_accepted,
    getting_a_user_returns_the_user_with_its_live_session_count,
    getting_an_unknown_user_or_an_id_in_other_case_is_404_not_found,
    pages_stay_consistent_while_users_are_added_and_deleted,
    listing_a_users_sessions_shows_only_their_live_sessions,
    listing_the_sessions_of_an_unknown_user_is_404,
    revoking_a_users_sessions_ends_them_all_and_nobody_elses,
    deleting_a_user_removes_the_user_and_their_sessions,
    deleting_an_unknown_user_is_404,
    patching_the_admin_flag_promotes_and_demotes_and_returns_the_user,
    the_last_admin_cannot_demote_themselves,
    the_last_admin_cannot_delete_themselves,
    with_two_admins_one_can_demote_the_other_who_then_loses_access,
    two_admins_demoting_each_other_at_once_leave_exactly_one_admin,
    two_admins_deleting_each_other_at_once_leave_an_admin,
    a_malformed_admin_patch_is_400_and_changes_nothing,
    a_wrong_method_on_an_admin_route_is_405_with_an_allow_header,
);

/// Every (method, path) of the route table under `/admin`, with `{id}`
/// replaced by `id`.
fn admin_routes(id: &str) -> Vec<(reqwest::Method, String)> {
    latchkey::routes::endpoints(true)
        .iter()
        .filter(|endpoint| endpoint.path.starts_with("/admin"))
        .flat_map(|endpoint| {
            let path = endpoint.path.replace("{id}", id);
            endpoint
                .methods()
                .map(|m| reqwest::Method::from_bytes(m.as_str().as_bytes()).unwrap())
                .map(move |method| (method, path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method == reqwest::Method::PATCH {
        request = request.json(&json!({ "admin": true }));
    }
    request.send().await.expect("request sent")
}

async fn list_page(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .get_with_token(&format!("/admin/users{query}"), token)
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("password_hash"), "{text}");
    assert!(!text.contains("$2"), "a bcrypt hash is listed: {text}");
    serde_json::from_str(&text).unwrap()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("{value} is not an object"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn user_summary_keys() -> BTreeSet<&'static str> {
    [
        "id",
        "email",
        "admin",
        "created_at",
        "email_verified",
        "disabled",
        "active_sessions",
    ]
    .into_iter()
    .collect()
}

/// A moment long enough ago that a session last used then is idle-expired.
fn idle_expired(app: &TestApp) -> chrono::NaiveDateTime {
    now_seconds() - app.settings.session.idle_timeout - TimeDelta::minutes(5)
}

/// A moment long enough ago that a session created then is past its
/// absolute timeout.
fn absolute_expired(app: &TestApp) -> chrono::NaiveDateTime {
    now_seconds() - app.settings.session.absolute_timeout - TimeDelta::minutes(5)
}

async fn every_admin_route_is_403_forbidden_for_a_non_admin_and_changes_nothing(backend: Backend) {
    // Arrange: a non-admin caller, a victim with a session, and a real admin.
    let app = spawn_app(backend).await;
    let _admin = app.register_admin().await;
    let caller = app.register_user().await;
    let victim = app.register_user().await;
    let routes = admin_routes(&victim.user_id);
    assert!(routes.len() >= 6, "the route table lost admin routes");

    // Act + Assert: every admin route refuses with 403 `forbidden`.
    for (method, path) in routes {
        let response = send(&app, method.clone(), &path, Some(&caller.token)).await;
        let body = assert_error(response, 403, "forbidden").await;
        assert!(!body.to_string().contains(&victim.email), "{method} {path}");
    }
    // Nor may a non-admin promote themselves.
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{}", caller.user_id),
            &caller.token,
            &json!({ "admin": true }),
        )
        .await;
    assert_error(response, 403, "forbidden").await;

    // Nothing changed.
    assert_eq!(app.admin_flag(&caller.user_id).await, Some(false));
    assert_eq!(app.admin_flag(&victim.user_id).await, Some(false));
    assert_eq!(app.session_rows(&victim.user_id).await.len(), 1);
    assert_eq!(app.status(&victim.token).await.status(), 200);
    assert_eq!(app.status(&caller.token).await.status(), 200);
}

async fn every_admin_route_is_401_without_a_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let victim = app.register_user().await;

    for (method, path) in admin_routes(&victim.user_id) {
        // Act
        let response = send(&app, method.clone(), &path, None).await;

        // Assert
        assert!(
            response
                .headers()
                .contains_key(reqwest::header::WWW_AUTHENTICATE),
            "{method} {path}"
        );
        assert_error(response, 401, "missing_token").await;
    }
    // An invalid token is 401 too, never 403.
    let response = send(
        &app,
        reqwest::Method::GET,
        "/admin/users",
        Some("lk_not-a-real-token"),
    )
    .await;
    assert_error(response, 401, "invalid_token").await;
    assert_eq!(app.admin_flag(&victim.user_id).await, Some(false));
    assert_eq!(app.session_rows(&victim.user_id).await.len(), 1);
}

async fn listing_users_pages_through_everyone_in_creation_order_without_gaps_or_duplicates(
    backend: Backend,
) {
    // Arrange: 7 users (the admin first), so pages of 3 are 3, 3 and 1.
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let mut created = vec![(admin.user_id.clone(), admin.email.clone())];
    for n in 0..6 {
        let email = format!("page-{n}@example.com");
        let id = app.insert_user(&email).await;
        created.push((id, email));
    }

    // Act
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let query = match &after {
            Some(after) => format!("?limit=3&after={after}"),
            None => "?limit=3".to_owned(),
        };
        let page = list_page(&app, &admin.token, &query).await;
        after = page["next_after"].as_str().map(str::to_owned);
        pages.push(page);
        if after.is_none() {
            break;
        }
    }

    // Assert
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["users"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [3, 3, 1], "{pages:?}");
    for page in &pages[..2] {
        let users = page["users"].as_array().unwrap();
        assert_eq!(page["next_after"], users.last().unwrap()["id"], "{page}");
    }
    assert_eq!(pages[2]["next_after"], Value::Null);
    let listed: Vec<(String, String)> = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap().clone())
        .map(|u| {
            assert_eq!(keys(&u), user_summary_keys(), "{u}");
            (
                u["id"].as_str().unwrap().to_owned(),
                u["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, created, "not every user once, in creation order");
    let all = pages
        .iter()
        .flat_map(|p| p["users"].as_array().unwrap().clone())
        .collect::<Vec<_>>();
    assert_eq!(all[0]["admin"], true);
    assert!(all[1..].iter().all(|u| u["admin"] == false), "{all:?}");
    assert_eq!(app.count_users().await, 7);
}

async fn when_the_users_fill_the_last_page_exactly_its_next_after_is_null(backend: Backend) {
    // Arrange: 4 users, pages of 2.
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    for n in 0..3 {
        app.insert_user(&format!("exact-{n}@example.com")).await;
    }
    let first = list_page(&app, &admin.token, "?limit=2").await;
    let after = first["next_after"]
        .as_str()
        .expect("a second page")
        .to_owned();

    // Act
    let second = list_page(&app, &admin.token, &format!("?limit=2&after={after}")).await;

    // Assert: the second page holds the last two users and is the last page.
    assert_eq!(second["users"].as_array().unwrap().len(), 2, "{second}");
    if let Some(next) = second["next_after"].as_str() {
        let third = list_page(&app, &admin.token, &format!("?limit=2&after={next}")).await;
        assert_eq!(third["users"], json!([]));
        panic!(
            "the last page (exactly full) has next_after {next}, which leads to an empty page: {second}"
        );
    }
}

async fn active_sessions_counts_only_live_sessions(backend: Backend) {
    // Arrange: a user with 4 sessions, one idle-expired and one past its
    // absolute timeout; another user with none (the rows are deleted).
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let (idle, _) = app.insert_session(&user.user_id).await;
    let (old, _) = app.insert_session(&user.user_id).await;
    app.insert_session(&user.user_id).await;
    let long_ago = idle_expired(&app);
    app.set_session_times(&idle, long_ago, long_ago).await;
    app.set_session_times(&old, absolute_expired(&app), now_seconds())
        .await;
    let loner = app.register_user().await;
    app.with_db({
        let id = loner.user_id.clone();
        move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::authentication_tokens as t;
            diesel::delete(t::table.filter(t::user_id.eq(id)))
                .execute(conn)
                .unwrap()
        }
    })
    .await;

    // Act
    let page = list_page(&app, &admin.token, "").await;

    // Assert
    let users = page["users"].as_array().unwrap();
    let count_of = |id: &str| {
        users
            .iter()
            .find(|u| u["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {page}"))["active_sessions"]
            .clone()
    };
    assert_eq!(count_of(&user.user_id), 2);
    assert_eq!(count_of(&loner.user_id), 0);
    assert_eq!(count_of(&admin.user_id), 1);
    assert_eq!(page["next_after"], Value::Null);
    // The expired rows are still stored: they are only not counted.
    assert_eq!(app.session_rows(&user.user_id).await.len(), 4);
}

async fn a_limit_of_0_or_501_is_422_invalid_limit_and_1_or_500_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    app.register_user().await;

    for limit in ["0", "501", "-1"] {
        // Act
        let response = app
            .get_with_token(&format!("/admin/users?limit={limit}"), &admin.token)
            .await;

        // Assert
        assert_error(response, 422, "invalid_limit").await;
    }
    let one = list_page(&app, &admin.token, "?limit=1").await;
    assert_eq!(one["users"].as_array().unwrap().len(), 1);
    assert_eq!(one["next_after"], one["users"][0]["id"]);
    let most = list_page(&app, &admin.token, "?limit=500").await;
    assert_eq!(most["users"].as_array().unwrap().len(), 2);
    assert_eq!(most["next_after"], Value::Null);
}

async fn getting_a_user_returns_the_user_with_its_live_session_count(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let (expired, _) = app.insert_session(&user.user_id).await;
    app.insert_session(&user.user_id).await;
    let long_ago = idle_expired(&app);
    app.set_session_times(&expired, long_ago, long_ago).await;

    // Act
    let response = app
        .get_with_token(&format!("/admin/users/{}", user.user_id), &admin.token)
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("password_hash"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(keys(&body), user_summary_keys(), "{body}");
    assert_eq!(body["id"], user.user_id.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["admin"], false);
    assert_eq!(body["active_sessions"], 2);
    crate::helpers::api_time(&body["created_at"]);
}

async fn getting_an_unknown_user_or_an_id_in_other_case_is_404_not_found(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let user = app.register_user().await;

    for id in [unknown, user.user_id.to_uppercase()] {
        // Act
        let response = app
            .get_with_token(&format!("/admin/users/{id}"), &admin.token)
            .await;

        // Assert
        assert_error(response, 404, "not_found").await;
    }
}

async fn listing_a_users_sessions_shows_only_their_live_sessions(backend: Backend) {
    // Arrange: the user has 3 sessions, one expired; someone else has one.
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let (second, _) = app.insert_session(&user.user_id).await;
    let (expired, _) = app.insert_session(&user.user_id).await;
    let long_ago = idle_expired(&app);
    app.set_session_times(&expired, long_ago, long_ago).await;
    app.register_user().await;

    // Act
    let response = app
        .get_with_token(
            &format!("/admin/users/{}/sessions", user.user_id),
            &admin.token,
        )
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("token_hash"), "{text}");
    assert!(!text.contains(&user.token), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let listed: BTreeSet<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [user.session_id.as_str(), second.as_str()]
        .into_iter()
        .collect();
    assert_eq!(listed, expected, "{body}");
    // The admin's own session is never "current" in someone else's list.
    assert!(
        body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["current"] == false),
        "{body}"
    );
}

async fn listing_the_sessions_of_an_unknown_user_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    // Act
    let response = app
        .get_with_token(&format!("/admin/users/{unknown}/sessions"), &admin.token)
        .await;

    // Assert
    assert_error(response, 404, "not_found").await;
}

async fn revoking_a_users_sessions_ends_them_all_and_nobody_elses(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let second = app.login_token(&user.email, &user.password).await;
    let bystander = app.register_user().await;

    // Act
    let response = app
        .delete_with_token(
            &format!("/admin/users/{}/sessions", user.user_id),
            &admin.token,
        )
        .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    assert!(app.session_rows(&user.user_id).await.is_empty());
    for token in [&user.token, &second] {
        assert_error(app.status(token).await, 401, "invalid_token").await;
    }
    assert_eq!(app.session_rows(&bystander.user_id).await.len(), 1);
    assert_eq!(app.status(&bystander.token).await.status(), 200);
    assert_eq!(app.status(&admin.token).await.status(), 200);
    // The user itself is kept and may log in again.
    assert_eq!(app.admin_flag(&user.user_id).await, Some(false));
    app.login_token(&user.email, &user.password).await;
    // Unknown users are 404.
    let unknown = uuid::Uuid::now_v7().to_string();
    let response = app
        .delete_with_token(&format!("/admin/users/{unknown}/sessions"), &admin.token)
        .await;
    assert_error(response, 404, "not_found").await;
}

async fn deleting_a_user_removes_the_user_and_their_sessions(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    app.insert_session(&user.user_id).await;
    let bystander = app.register_user().await;
    assert_eq!(app.session_rows(&user.user_id).await.len(), 2);

    // Act
    let response = app
        .delete_with_token(&format!("/admin/users/{}", user.user_id), &admin.token)
        .await;

    // Assert
    assert_eq!(response.status(), 204);
    assert_eq!(app.admin_flag(&user.user_id).await, None);
    assert!(app.session_rows(&user.user_id).await.is_empty());
    assert_eq!(app.count_users().await, 2);
    assert_eq!(app.count_sessions().await, 2);
    assert_error(app.status(&user.token).await, 401, "invalid_token").await;
    assert_eq!(app.status(&bystander.token).await.status(), 200);
    let response = app
        .get_with_token(&format!("/admin/users/{}", user.user_id), &admin.token)
        .await;
    assert_error(response, 404, "not_found").await;
    // The email is free again.
    assert_eq!(
        app.register(&user.email, &user.password).await.status(),
        201
    );
}

async fn deleting_an_unknown_user_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    // Act
    let response = app
        .delete_with_token(&format!("/admin/users/{unknown}"), &admin.token)
        .await;

    // Assert
    assert_error(response, 404, "not_found").await;
    assert_eq!(app.count_users().await, 1);
}

async fn patching_the_admin_flag_promotes_and_demotes_and_returns_the_user(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let path = format!("/admin/users/{}", user.user_id);
    assert_error(
        app.get_with_token("/admin/users", &user.token).await,
        403,
        "forbidden",
    )
    .await;

    // Act: promote
    let response = app
        .patch_json_with_token(&path, &admin.token, &json!({ "admin": true }))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("password_hash"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["id"], user.user_id.as_str());
    assert_eq!(body["email"], user.email.as_str());
    assert_eq!(body["admin"], true);
    crate::helpers::api_time(&body["created_at"]);
    assert_eq!(app.admin_flag(&user.user_id).await, Some(true));
    assert_eq!(
        app.get_with_token("/admin/users", &user.token)
            .await
            .status(),
        200,
        "the promoted user's existing token works on admin routes at once"
    );

    // Act: demote
    let response = app
        .patch_json_with_token(&path, &admin.token, &json!({ "admin": false }))
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["admin"], false);
    assert_eq!(app.admin_flag(&user.user_id).await, Some(false));
    assert_error(
        app.get_with_token("/admin/users", &user.token).await,
        403,
        "forbidden",
    )
    .await;
    // Unknown users are 404.
    let unknown = uuid::Uuid::now_v7().to_string();
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{unknown}"),
            &admin.token,
            &json!({ "admin": true }),
        )
        .await;
    assert_error(response, 404, "not_found").await;
}

async fn the_last_admin_cannot_demote_themselves(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    app.register_user().await;

    // Act
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{}", admin.user_id),
            &admin.token,
            &json!({ "admin": false }),
        )
        .await;

    // Assert
    assert_error(response, 409, "last_admin").await;
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(
        app.get_with_token("/admin/users", &admin.token)
            .await
            .status(),
        200
    );
    // Setting the flag it already has is fine.
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{}", admin.user_id),
            &admin.token,
            &json!({ "admin": true }),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
}

async fn the_last_admin_cannot_delete_themselves(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;

    // Act
    let response = app
        .delete_with_token(&format!("/admin/users/{}", admin.user_id), &admin.token)
        .await;

    // Assert
    assert_error(response, 409, "last_admin").await;
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
    assert_eq!(app.session_rows(&admin.user_id).await.len(), 1);
    assert_eq!(app.status(&admin.token).await.status(), 200);
}

async fn with_two_admins_one_can_demote_the_other_who_then_loses_access(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let first = app.register_admin().await;
    let second = app.register_admin().await;

    // Act
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{}", second.user_id),
            &first.token,
            &json!({ "admin": false }),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["admin"], false);
    assert_eq!(app.admin_flag(&second.user_id).await, Some(false));
    assert_eq!(app.admin_flag(&first.user_id).await, Some(true));
    assert_error(
        app.get_with_token("/admin/users", &second.token).await,
        403,
        "forbidden",
    )
    .await;
    // Now the first is the last admin and stays one.
    let response = app
        .patch_json_with_token(
            &format!("/admin/users/{}", first.user_id),
            &first.token,
            &json!({ "admin": false }),
        )
        .await;
    assert_error(response, 409, "last_admin").await;
    assert_eq!(app.admin_flag(&first.user_id).await, Some(true));
}

async fn a_wrong_method_on_an_admin_route_is_405_with_an_allow_header(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let cases = [
        (
            reqwest::Method::POST,
            "/admin/users".to_owned(),
            vec!["GET"],
        ),
        (
            reqwest::Method::PUT,
            format!("/admin/users/{}", user.user_id),
            vec!["DELETE", "GET", "PATCH"],
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{}/sessions", user.user_id),
            vec!["DELETE", "GET"],
        ),
    ];

    for (method, path, allowed) in cases {
        // Act
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();

        // Assert
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_str()
            .unwrap()
            .to_owned();
        let mut listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        listed.sort_unstable();
        assert_eq!(listed, allowed, "{method} {path}: Allow {allow}");
        assert_error(response, 405, "method_not_allowed").await;
    }
    assert_eq!(app.admin_flag(&user.user_id).await, Some(false));
    assert_eq!(app.session_rows(&user.user_id).await.len(), 1);
}

async fn two_admins_demoting_each_other_at_once_leave_exactly_one_admin(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let first = app.register_admin().await;
    let second = app.register_admin().await;
    let demote = json!({ "admin": false });

    for round in 0..5 {
        app.make_admin(&first.user_id).await;
        app.make_admin(&second.user_id).await;

        // Act
        let (first_path, second_path) = (
            format!("/admin/users/{}", first.user_id),
            format!("/admin/users/{}", second.user_id),
        );
        let (a, b) = tokio::join!(
            app.patch_json_with_token(&second_path, &first.token, &demote),
            app.patch_json_with_token(&first_path, &second.token, &demote),
        );

        // Assert
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        let flags = [
            app.admin_flag(&first.user_id).await,
            app.admin_flag(&second.user_id).await,
        ];
        // The loser is refused as the last admin, or, if the winner
        // committed before the loser's token was checked, as a non-admin.
        assert!(
            statuses == [200, 409] || statuses == [200, 403],
            "round {round}: {statuses:?}, flags {flags:?}"
        );
        assert_eq!(
            flags.iter().filter(|f| **f == Some(true)).count(),
            1,
            "round {round}: {flags:?}"
        );
    }
}

async fn two_admins_deleting_each_other_at_once_leave_an_admin(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let first = app.register_admin().await;
    let second = app.register_admin().await;

    // Act
    let (first_path, second_path) = (
        format!("/admin/users/{}", first.user_id),
        format!("/admin/users/{}", second.user_id),
    );
    let (a, b) = tokio::join!(
        app.delete_with_token(&second_path, &first.token),
        app.delete_with_token(&first_path, &second.token),
    );

    // Assert: one deletion wins; the other is refused as the last admin,
    // or finds its caller's session already gone with its user.
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert!(
        statuses == [204, 409] || statuses == [204, 401],
        "{statuses:?}"
    );
    let flags = [
        app.admin_flag(&first.user_id).await,
        app.admin_flag(&second.user_id).await,
    ];
    assert_eq!(
        flags,
        if a.status() == 204 {
            [Some(true), None]
        } else {
            [None, Some(true)]
        }
    );
    assert_eq!(app.count_users().await, 1);
}

async fn a_malformed_admin_patch_is_400_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let user = app.register_user().await;
    let path = format!("/admin/users/{}", user.user_id);

    for body in [
        json!({}),
        json!({ "admin": "yes" }),
        json!({ "admin": null }),
    ] {
        // Act
        let response = app.patch_json_with_token(&path, &admin.token, &body).await;

        // Assert
        assert_error(response, 400, "bad_request").await;
    }
    assert_eq!(app.admin_flag(&user.user_id).await, Some(false));
    assert_eq!(app.admin_flag(&admin.user_id).await, Some(true));
}

async fn pages_stay_consistent_while_users_are_added_and_deleted(backend: Backend) {
    // Arrange: 5 users; read the first page of 2.
    let app = spawn_app(backend).await;
    let admin = app.register_admin().await;
    let mut ids = vec![admin.user_id.clone()];
    for n in 0..4 {
        ids.push(app.insert_user(&format!("moving-{n}@example.com")).await);
    }
    let first = list_page(&app, &admin.token, "?limit=2").await;
    let after = first["next_after"].as_str().unwrap().to_owned();
    assert_eq!(after, ids[1]);

    // Act: the user the cursor names is deleted, a new one arrives.
    let response = app
        .delete_with_token(&format!("/admin/users/{after}"), &admin.token)
        .await;
    assert_eq!(response.status(), 204);
    let newcomer = app.insert_user("newcomer@example.com").await;
    let rest = list_page(&app, &admin.token, &format!("?limit=10&after={after}")).await;

    // Assert: the rest follows on, newcomer last, nothing repeated.
    let listed: Vec<&str> = rest["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&ids[2], &ids[3], &ids[4], &newcomer]);
    assert_eq!(rest["next_after"], Value::Null);
}
