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
    }
}

diesel::joinable!(authentication_tokens -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(authentication_tokens, users);
