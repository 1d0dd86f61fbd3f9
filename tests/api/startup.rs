//! Starting up: instances of one deployment starting together, as an
//! orchestrator starts the replicas of a new deployment on an empty
//! database (every one comes up, and the schema is migrated once), and the
//! settings latchkey gives its connections.

use diesel::prelude::*;

use crate::helpers::{Backend, TestDatabase, spawn_app_on};
use crate::on_both_backends;

on_both_backends!(instances_started_at_once_on_an_empty_database_all_come_up,);

async fn instances_started_at_once_on_an_empty_database_all_come_up(backend: Backend) {
    // Arrange: an empty database.
    let database = TestDatabase::create(backend);

    // Act: four instances start at the same moment, each migrating.
    let starts = (0..4).map(|_| spawn_app_on(database.url().clone(), |_| {}));
    let apps = futures_util::future::join_all(starts).await;

    // Assert: all four serve the same sessions ...
    let user = apps[0].register_user().await;
    for app in &apps {
        assert_eq!(app.status(&user.token).await.status(), 200);
    }
    // ... and each migration was recorded once.
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let recorded = apps[0]
        .with_db(|conn| {
            diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
                .get_result::<Count>(conn)
                .expect("the migrations table")
                .n
        })
        .await;
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
        .expect("the migrations")
        .count();
    assert_eq!(recorded, i64::try_from(migrations).unwrap());
    drop(apps);
}

/// latchkey's PostgreSQL connections plan for data in cache (see
/// `db::open`): a batch of checks is joined to its users by index, not by
/// hashing the users table. Never raised above the server's own setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_plan_for_cached_data() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        random_page_cost: String,
    }
    let database = TestDatabase::create(Backend::Postgres);
    let url = database.url().clone();
    let cost = tokio::task::spawn_blocking(move || {
        let mut conn = latchkey::db::connect(&url).expect("a connection");
        diesel::sql_query("SHOW random_page_cost")
            .get_result::<Setting>(&mut conn)
            .expect("the setting")
            .random_page_cost
    })
    .await
    .unwrap();
    assert_eq!(cost, "1.1");
}
