//! The `throttle_buckets` table: the throttles' state, shared by every
//! instance on the database. A throttled request costs one small read (of
//! all its buckets at once) and no write; an admitted one adds one
//! compare-and-set write per bucket.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::Connection;
use crate::db::schema::throttle_buckets as buckets;
use crate::throttle::{Bucket, decide};

/// How often a bucket whose write lost a race is read and decided again.
const ATTEMPTS: usize = 3;

/// Admits a request that takes one token from each of `wanted`, or says
/// how long to wait. All-or-nothing only in the common case: when the
/// first bucket was taken and a later one refuses, the first stays taken,
/// as with separate in-process limiters.
pub fn admit(
    conn: &mut Connection,
    wanted: &[Bucket],
    now: NaiveDateTime,
) -> QueryResult<Result<(), Duration>> {
    let keys: Vec<&str> = wanted.iter().map(|b| b.key.as_str()).collect();
    let found: Vec<(String, NaiveDateTime)> = buckets::table
        .filter(buckets::bucket.eq_any(&keys))
        .select((buckets::bucket, buckets::tat))
        .load(conn)?;
    let tat_of = |key: &str| found.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
    // Decide them all before writing any: a throttled request writes nothing.
    let mut decided = Vec::with_capacity(wanted.len());
    for bucket in wanted {
        let tat = tat_of(&bucket.key);
        match decide(tat, now, bucket) {
            Ok(next) => decided.push((bucket, tat, next)),
            Err(wait) => return Ok(Err(wait)),
        }
    }
    for (bucket, mut tat, mut next) in decided {
        let mut attempts = 0;
        while !swap(conn, &bucket.key, tat, next)? {
            attempts += 1;
            if attempts == ATTEMPTS {
                // Hammered by concurrent requests: refuse rather than let
                // them all through.
                return Ok(Err(bucket.interval_std()));
            }
            tat = buckets::table
                .find(&bucket.key)
                .select(buckets::tat)
                .first(conn)
                .optional()?;
            match decide(tat, now, bucket) {
                Ok(n) => next = n,
                Err(wait) => return Ok(Err(wait)),
            }
        }
    }
    Ok(Ok(()))
}

/// Moves a bucket from `old` (`None`: no row yet) to `new`, unless another
/// request changed it meanwhile. Returns whether it did.
fn swap(
    conn: &mut Connection,
    key: &str,
    old: Option<NaiveDateTime>,
    new: NaiveDateTime,
) -> QueryResult<bool> {
    match old {
        Some(old) => diesel::update(buckets::table.find(key).filter(buckets::tat.eq(old)))
            .set(buckets::tat.eq(new))
            .execute(conn)
            .map(|n| n == 1),
        None => match diesel::insert_into(buckets::table)
            .values((buckets::bucket.eq(key), buckets::tat.eq(new)))
            .execute(conn)
        {
            Ok(_) => Ok(true),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// Deletes up to `batch` buckets that are full again (their arrival time
/// has passed: a fresh bucket would decide the same); returns how many.
pub fn delete_idle_batch(
    conn: &mut Connection,
    now: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let idle: Vec<String> = buckets::table
        .filter(buckets::tat.le(now))
        .select(buckets::bucket)
        .limit(batch)
        .load(conn)?;
    if idle.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        buckets::table
            .filter(buckets::bucket.eq_any(&idle))
            .filter(buckets::tat.le(now)),
    )
    .execute(conn)
}
