//! `/books` behind latchkey: who may do what, what is stored, and what is
//! answered when latchkey says no or cannot say.

use reqwest::Method;
use serde_json::{Value, json};

use crate::app::{Bookstore, assert_error, status_and_json};
use crate::harness::{Backend, Latchkey};
use crate::on_both_backends;

on_both_backends!(
    a_user_creates_lists_reads_and_updates_books_stored_under_their_latchkey_id,
    only_an_admin_deletes_a_book,
    after_logout_at_latchkey_the_token_is_refused_with_401,
    without_a_live_token_every_route_is_401_and_nothing_is_stored,
    while_latchkey_is_down_every_route_is_503,
    bad_bodies_are_400_or_422_and_unknown_books_404,
);

const ROUTES: [(&str, &str); 5] = [
    ("GET", "/books"),
    ("POST", "/books"),
    ("GET", "/books/0190"),
    ("PUT", "/books/0190"),
    ("DELETE", "/books/0190"),
];

fn dune() -> Value {
    json!({ "title": "Dune", "author": "Frank Herbert", "year": 1965 })
}

async fn create(bookstore: &Bookstore, token: &str, book: &Value) -> Value {
    let response = bookstore
        .send(Method::POST, "/books", Some(token), Some(book))
        .await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn a_user_creates_lists_reads_and_updates_books_stored_under_their_latchkey_id(
    backend: Backend,
) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let alice = latchkey.register_user().await;
    let bob = latchkey.register_user().await;

    // Act: create
    let response = bookstore
        .send(Method::POST, "/books", Some(&alice.token), Some(&dune()))
        .await;

    // Assert
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let (status, created) = status_and_json(response).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(location, Some(format!("/books/{id}")));
    assert_eq!(
        created,
        json!({ "id": id, "title": "Dune", "author": "Frank Herbert", "year": 1965,
                "created_by": alice.user_id })
    );
    let rows = bookstore.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].title, "Dune");
    assert_eq!(rows[0].year, Some(1965));
    assert_eq!(rows[0].created_by, alice.user_id);

    // Act: another user adds one without a year, then lists and reads.
    let second = create(
        &bookstore,
        &bob.token,
        &json!({ "title": "  Solaris ", "author": "Stanisław Lem" }),
    )
    .await;
    let (list_status, list) = status_and_json(
        bookstore
            .send(Method::GET, "/books", Some(&bob.token), None)
            .await,
    )
    .await;
    let (get_status, got) = status_and_json(
        bookstore
            .send(Method::GET, &format!("/books/{id}"), Some(&bob.token), None)
            .await,
    )
    .await;

    // Assert
    assert_eq!(second["title"], "Solaris", "stored trimmed");
    assert_eq!(second["year"], Value::Null);
    assert_eq!(second["created_by"], bob.user_id.as_str());
    assert_eq!(list_status, 200, "{list}");
    assert_eq!(list, json!({ "books": [created, second] }), "oldest first");
    assert_eq!(get_status, 200, "{got}");
    assert_eq!(got, created);

    // Act: update (any user may; the creator stays)
    let (put_status, updated) = status_and_json(
        bookstore
            .send(
                Method::PUT,
                &format!("/books/{id}"),
                Some(&bob.token),
                Some(&json!({ "title": "Dune Messiah", "author": "Frank Herbert", "year": 1969 })),
            )
            .await,
    )
    .await;

    // Assert
    assert_eq!(put_status, 200, "{updated}");
    assert_eq!(
        updated,
        json!({ "id": id, "title": "Dune Messiah", "author": "Frank Herbert", "year": 1969,
                "created_by": alice.user_id })
    );
    let rows = bookstore.rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].title, "Dune Messiah");
    assert_eq!(rows[0].year, Some(1969));
    assert_eq!(rows[0].created_by, alice.user_id);
    assert_eq!(rows[1].title, "Solaris");
}

async fn only_an_admin_deletes_a_book(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let user = latchkey.register_user().await;
    let admin = latchkey.register_admin().await;
    let book = create(&bookstore, &user.token, &dune()).await;
    let path = format!("/books/{}", book["id"].as_str().expect("an id"));

    // Act: the creator, who is no admin
    let by_user = bookstore
        .send(Method::DELETE, &path, Some(&user.token), None)
        .await;

    // Assert
    assert_error(by_user, 403, "forbidden").await;
    assert_eq!(bookstore.rows().await.len(), 1);

    // Act: an admin
    let by_admin = bookstore
        .send(Method::DELETE, &path, Some(&admin.token), None)
        .await;

    // Assert
    let (status, body) = status_and_json(by_admin).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
    assert!(bookstore.rows().await.is_empty());
    let again = bookstore
        .send(Method::DELETE, &path, Some(&admin.token), None)
        .await;
    assert_error(again, 404, "not_found").await;
}

async fn after_logout_at_latchkey_the_token_is_refused_with_401(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let user = latchkey.register_user().await;
    let (status, _) = status_and_json(
        bookstore
            .send(Method::GET, "/books", Some(&user.token), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);

    // Act
    latchkey.logout(&user.token).await;
    let response = bookstore
        .send(Method::GET, "/books", Some(&user.token), None)
        .await;

    // Assert
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ASCII").to_owned());
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer realm=\"bookstore\", error=\"invalid_token\"")
    );
    assert_error(response, 401, "invalid_token").await;
}

async fn without_a_live_token_every_route_is_401_and_nothing_is_stored(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let garbage = format!("lk_{}", "A".repeat(48));

    for (method, path) in ROUTES {
        let method: Method = method.parse().expect("a method");
        // A body the bookstore would refuse: the token is checked first.
        let body = json!({ "title": "" });

        // Act
        let missing = bookstore
            .send(method.clone(), path, None, Some(&body))
            .await;
        let invalid = bookstore
            .send(method, path, Some(&garbage), Some(&body))
            .await;

        // Assert
        assert!(
            missing
                .headers()
                .contains_key(reqwest::header::WWW_AUTHENTICATE),
            "{path}"
        );
        assert_error(missing, 401, "missing_token").await;
        assert_error(invalid, 401, "invalid_token").await;
    }
    assert!(bookstore.rows().await.is_empty());
}

async fn while_latchkey_is_down_every_route_is_503(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let admin = latchkey.register_admin().await;
    create(&bookstore, &admin.token, &dune()).await;

    // Act
    latchkey.stop().await;

    for (method, path) in ROUTES {
        let method: Method = method.parse().expect("a method");
        let response = bookstore
            .send(method, path, Some(&admin.token), Some(&dune()))
            .await;

        // Assert
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| v.as_bytes().to_vec());
        assert_eq!(retry_after.as_deref(), Some(&b"1"[..]), "{path}");
        assert_error(response, 503, "service_unavailable").await;
    }
    assert_eq!(bookstore.rows().await.len(), 1, "nothing changed");
}

async fn bad_bodies_are_400_or_422_and_unknown_books_404(backend: Backend) {
    // Arrange
    let latchkey = Latchkey::start(backend).await;
    let bookstore = Bookstore::start(&latchkey).await;
    let user = latchkey.register_user().await;
    let book = create(&bookstore, &user.token, &dune()).await;
    let path = format!("/books/{}", book["id"].as_str().expect("an id"));
    let send_raw =
        |method: Method, path: String, content_type: &'static str, body: &'static str| {
            let request = reqwest::Client::new()
                .request(method, format!("{}{path}", bookstore.address))
                .bearer_auth(&user.token)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
            async move { request.send().await.expect("the bookstore answers") }
        };

    for method in [Method::POST, Method::PUT] {
        let target = if method == Method::POST {
            "/books".to_owned()
        } else {
            path.clone()
        };
        // Act / Assert: not JSON
        let response = send_raw(
            method.clone(),
            target.clone(),
            "application/json",
            "{\"title\":",
        )
        .await;
        assert_error(response, 400, "bad_request").await;
        // Not declared as JSON
        let response = send_raw(method.clone(), target.clone(), "text/plain", "{}").await;
        assert_error(response, 415, "unsupported_media_type").await;
        // JSON, but not a book
        for body in [
            json!({ "title": "Dune" }),
            json!({ "title": "Dune", "author": "Frank Herbert", "year": "1965" }),
            json!({ "title": "Dune", "author": "Frank Herbert", "created_by": "me" }),
            json!({ "title": " ", "author": "Frank Herbert" }),
            json!({ "title": "Dune", "author": "Frank Herbert", "year": 100_000 }),
        ] {
            let response = bookstore
                .send(method.clone(), &target, Some(&user.token), Some(&body))
                .await;
            assert_error(response, 422, "invalid_book").await;
        }
    }
    let unknown = "/books/0190a0a0-0000-7000-8000-000000000000";
    assert_error(
        bookstore
            .send(Method::GET, unknown, Some(&user.token), None)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        bookstore
            .send(Method::PUT, unknown, Some(&user.token), Some(&dune()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        bookstore
            .send(Method::GET, "/authors", Some(&user.token), None)
            .await,
        404,
        "not_found",
    )
    .await;
    assert_error(
        bookstore
            .send(Method::PATCH, &path, Some(&user.token), Some(&dune()))
            .await,
        405,
        "method_not_allowed",
    )
    .await;
    let rows = bookstore.rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].title, "Dune", "nothing was changed");
}
