//! latchkey behind a real nginx (`auth_request`), in front of a small
//! upstream that echoes the headers it receives. The nginx configuration is
//! the documented one, `docs/nginx-latchkey.conf`, with its addresses
//! filled in. nginx must be installed (`scripts/test.sh` installs it).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value};

use crate::helpers::{Backend, Registered, TestApp, spawn_app};
use crate::receivers::free_port;

crate::on_both_backends!(
    a_valid_token_reaches_the_upstream_with_the_callers_identity,
    missing_bad_expired_and_revoked_tokens_are_stopped_by_nginx,
    a_logout_is_honoured_by_the_very_next_proxied_request,
    a_client_cannot_forge_the_identity_headers,
    admin_routes_give_403_to_non_admins,
);

const NGINX: &str = "/usr/sbin/nginx";

/// The protected service: answers every request with the headers it got.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let server = HttpServer::new(move || {
            let counter = Arc::clone(&counter);
            App::new().default_service(web::to(move |req: HttpRequest| {
                counter.fetch_add(1, Ordering::SeqCst);
                let headers: Map<String, Value> = req
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                        )
                    })
                    .collect();
                async move {
                    HttpResponse::Ok().json(serde_json::json!({
                        "path": req.path(),
                        "headers": headers,
                    }))
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("the upstream binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { port, hits, handle }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// nginx with the documented configuration, in a directory of its own,
/// stopped by its PID when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(latchkey_port: u16, upstream_port: u16) -> Self {
        assert!(
            std::path::Path::new(NGINX).exists(),
            "nginx is not installed at {NGINX}: run scripts/test.sh, which installs it"
        );
        let dir = tempfile::tempdir().expect("a directory for nginx");
        let port = free_port();
        let site = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/nginx-latchkey.conf"
        ))
        .expect("the documented configuration")
        .replace("LATCHKEY", &format!("127.0.0.1:{latchkey_port}"))
        .replace("APP", &format!("127.0.0.1:{upstream_port}"))
        .replace("LISTEN", &format!("127.0.0.1:{port}"));
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {site}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).expect("nginx.conf written");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    app: TestApp,
    upstream: Upstream,
    nginx: Nginx,
}

async fn setup(backend: Backend) -> Setup {
    let app = spawn_app(backend).await;
    let latchkey_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let upstream = Upstream::start();
    let nginx = Nginx::start(latchkey_port, upstream.port);
    Setup {
        app,
        upstream,
        nginx,
    }
}

async fn get(setup: &Setup, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = setup.app.client.get(setup.nginx.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request through nginx")
}

fn identity(echo: &Value) -> [Value; 4] {
    let h = &echo["headers"];
    [
        h["x-latchkey-user-id"].clone(),
        h["x-latchkey-email"].clone(),
        h["x-latchkey-admin"].clone(),
        h["x-latchkey-session-id"].clone(),
    ]
}

fn expected(user: &Registered, admin: bool) -> [Value; 4] {
    [
        Value::from(user.user_id.as_str()),
        Value::from(user.email.as_str()),
        Value::from(if admin { "true" } else { "false" }),
        Value::from(user.session_id.as_str()),
    ]
}

async fn a_valid_token_reaches_the_upstream_with_the_callers_identity(backend: Backend) {
    let s = setup(backend).await;
    let user = s.app.register_user().await;

    let response = get(&s, "/books/42?sort=title", Some(&user.token)).await;

    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/books/42");
    assert_eq!(identity(&echo), expected(&user, false));
    assert_eq!(s.upstream.hits(), 1);
}

async fn missing_bad_expired_and_revoked_tokens_are_stopped_by_nginx(backend: Backend) {
    let s = setup(backend).await;
    let expired = s.app.register_user().await;
    let long_ago = crate::helpers::now_seconds()
        - s.app.settings.session.idle_timeout
        - chrono::TimeDelta::minutes(5);
    s.app
        .set_session_times(&expired.session_id, long_ago, long_ago)
        .await;
    let revoked = s.app.register_user().await;
    s.app
        .post_with_token("/auth/logout-all", &revoked.token)
        .await;

    for token in [
        None,
        Some("lk_not-a-real-token"),
        Some(expired.token.as_str()),
        Some(revoked.token.as_str()),
    ] {
        let response = get(&s, "/books", token).await;
        assert_eq!(response.status(), 401, "{token:?}");
    }
    assert_eq!(s.upstream.hits(), 0, "nothing reached the upstream");
}

async fn a_logout_is_honoured_by_the_very_next_proxied_request(backend: Backend) {
    let s = setup(backend).await;
    let user = s.app.register_user().await;
    assert_eq!(get(&s, "/books", Some(&user.token)).await.status(), 200);

    assert_eq!(
        s.app
            .post_with_token("/auth/logout", &user.token)
            .await
            .status(),
        204
    );

    assert_eq!(get(&s, "/books", Some(&user.token)).await.status(), 401);
    assert_eq!(s.upstream.hits(), 1);
}

async fn a_client_cannot_forge_the_identity_headers(backend: Backend) {
    let s = setup(backend).await;
    let user = s.app.register_user().await;
    let victim = s.app.register_admin().await;

    let response = s
        .app
        .client
        .get(s.nginx.url("/books"))
        .bearer_auth(&user.token)
        .header("X-Latchkey-User-Id", victim.user_id.as_str())
        .header("X-Latchkey-Admin", "true")
        .header("X-Latchkey-Email", victim.email.as_str())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(identity(&echo), expected(&user, false));
    let forged_anonymously = s
        .app
        .client
        .get(s.nginx.url("/books"))
        .header("X-Latchkey-User-Id", victim.user_id.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(forged_anonymously.status(), 401);
    assert_eq!(s.upstream.hits(), 1);
}

async fn admin_routes_give_403_to_non_admins(backend: Backend) {
    let s = setup(backend).await;
    let user = s.app.register_user().await;
    let admin = s.app.register_admin().await;

    assert_eq!(
        get(&s, "/admin/reports", Some(&user.token)).await.status(),
        403
    );
    assert_eq!(s.upstream.hits(), 0);
    let response = get(&s, "/admin/reports", Some(&admin.token)).await;
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(identity(&echo), expected(&admin, true));
    assert_eq!(get(&s, "/admin/reports", None).await.status(), 401);
}
