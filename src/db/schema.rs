//! One schema for both backends: only SQL types that MySQL and SQLite share.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        admin -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        email_verified_at -> Nullable<Timestamp>,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// `id` is the key diesel uses (`find`): the session's public name. The
    /// table itself is keyed (clustered) by `token_hash`, see the migrations
    /// `*_cluster_sessions_by_token_hash`; `id` has a unique index of its own.
    authentication_tokens (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Binary,
        created_at -> Timestamp,
        last_updated_at -> Timestamp,
        user_agent -> Nullable<Text>,
        label -> Nullable<Text>,
        client_ip -> Nullable<Text>,
    }
}

diesel::table! {
    /// One-time codes, by the SHA-256 digest of the code.
    one_time_codes (code_hash) {
        code_hash -> Binary,
        user_id -> Text,
        purpose -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    /// Messages waiting for delivery (see `crate::delivery`).
    outbox (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        kind -> Text,
        payload -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
    }
}

diesel::table! {
    security_events (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        kind -> Text,
        session_id -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// The throttles' buckets (see `crate::throttle`).
    throttle_buckets (bucket) {
        bucket -> Text,
        tat -> Timestamp,
    }
}

diesel::joinable!(authentication_tokens -> users (user_id));
diesel::joinable!(one_time_codes -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    authentication_tokens,
    users,
    one_time_codes,
    outbox,
    security_events,
    throttle_buckets
);
