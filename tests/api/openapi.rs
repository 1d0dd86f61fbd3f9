//! `GET /openapi.json`: the OpenAPI 3 document matches the route table.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    the_openapi_document_describes_exactly_the_registered_routes,
    every_documented_parameter_is_where_the_route_takes_it,
);

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(backend: Backend) -> Value {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.expect("valid JSON")
}

async fn the_openapi_document_describes_exactly_the_registered_routes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let registered: BTreeSet<(String, String)> = latchkey::routes::endpoints(true)
        .iter()
        .flat_map(|endpoint| {
            endpoint
                .methods()
                .map(|m| {
                    (
                        m.as_str().to_lowercase(),
                        endpoint.documented_path().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();

    // Act
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let document: Value = response.json().await.expect("valid JSON");
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    let paths = document["paths"].as_object().expect("a paths object");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (key, operation) in item.as_object().expect("a path item") {
            if HTTP_METHODS.contains(&key.as_str()) {
                assert!(
                    operation["responses"]
                        .as_object()
                        .is_some_and(|r| !r.is_empty()),
                    "{key} {path} documents no responses"
                );
                documented.insert((key.clone(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty() && unregistered.is_empty(),
        "routes missing from the document: {undocumented:?}; documented but not routed: {unregistered:?}"
    );
    assert!(registered.len() >= 19, "{registered:?}");
    // Every security scheme an operation names is defined.
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    for item in paths.values() {
        for operation in item.as_object().unwrap().values() {
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "undefined scheme {name}");
                }
            }
        }
    }
}

async fn every_documented_parameter_is_where_the_route_takes_it(backend: Backend) {
    // Arrange + Act
    let document = document(backend).await;

    // Assert: path parameters are exactly the placeholders of the path.
    let mut misplaced = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let placeholders: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let in_path: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            if in_path != placeholders {
                misplaced.push(format!(
                    "{method} {path}: path parameters {in_path:?}, placeholders {placeholders:?}"
                ));
            }
        }
    }
    // The page of users is chosen in the query string.
    let list_params: BTreeSet<(&str, &str)> =
        document["paths"]["/admin/users"]["get"]["parameters"]
            .as_array()
            .expect("GET /admin/users parameters")
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
            .collect();
    for wanted in [("limit", "query"), ("after", "query")] {
        if !list_params.contains(&wanted) {
            misplaced.push(format!(
                "get /admin/users: {wanted:?} is not documented; it has {list_params:?}"
            ));
        }
    }
    assert!(misplaced.is_empty(), "{misplaced:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_declares_the_answers_the_framework_gives() {
    let document = document(Backend::Sqlite).await;
    let statuses = |method: &str, path: &str| -> BTreeSet<String> {
        document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .keys()
            .cloned()
            .collect()
    };
    let missing = |method: &str, path: &str, wanted: &[&str]| -> Vec<String> {
        let have = statuses(method, path);
        wanted
            .iter()
            .filter(|s| !have.contains(**s))
            .map(|s| format!("{method} {path}: {s}"))
            .collect()
    };
    let mut gaps = Vec::new();
    for (method, path) in [
        ("get", "/admin/users"),
        ("get", "/admin/users/{id}"),
        ("patch", "/admin/users/{id}"),
        ("delete", "/admin/users/{id}"),
        ("get", "/admin/users/{id}/sessions"),
        ("delete", "/admin/users/{id}/sessions"),
        ("get", "/admin/users/{id}/events"),
    ] {
        gaps.extend(missing(method, path, &["401", "403", "431", "503"]));
    }
    for path in ["/auth/login", "/auth/register", "/auth/password/forgot"] {
        gaps.extend(missing("post", path, &["400", "413", "415", "431"]));
    }
    gaps.extend(missing("get", "/admin/users", &["400"]));
    gaps.extend(missing("get", "/auth/verify", &["200", "401", "403"]));
    assert!(gaps.is_empty(), "undeclared answers: {gaps:#?}");
    // Each added answer has the error schema.
    let added = &document["paths"]["/auth/login"]["post"]["responses"]["415"];
    assert_eq!(
        added["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
}
