//! Instances of one deployment starting together, as an orchestrator starts
//! the replicas of a new deployment on an empty database: every one comes
//! up, and the schema is migrated once.

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
