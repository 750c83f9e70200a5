//! The tables of both backends (`migrations/*`). The two `files` columns
//! stored differently per backend have a type of their own
//! ([`crate::types`]); an adapter adds only its own extra tables (SQLite's
//! `file_shares`).

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{MetadataJson, ShareList};

    files (id) {
        id -> Text,
        project -> Text,
        env -> Text,
        s3_key -> Text,
        original_name -> Text,
        name_folded -> Text,
        mime_type -> Text,
        size -> BigInt,
        width -> Nullable<BigInt>,
        height -> Nullable<BigInt>,
        visibility -> Text,
        bucket -> Text,
        owner_type -> Text,
        owner_id -> Text,
        shared_with -> ShareList,
        metadata -> MetadataJson,
        created_at -> BigInt,
        updated_at -> BigInt,
        checksum_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        key_hash -> Text,
        project -> Text,
        env -> Text,
        kind -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    uploads (s3_key) {
        s3_key -> Text,
        project -> Text,
        env -> Text,
        owner_type -> Text,
        owner_id -> Text,
        filename -> Text,
        content_type -> Text,
        declared_size -> Nullable<BigInt>,
        visibility -> Nullable<Text>,
        category -> Nullable<Text>,
        max_size -> BigInt,
        multipart_id -> Nullable<Text>,
        state -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        checksum_sha256 -> Nullable<Text>,
    }
}

diesel::table! {
    object_deletions (s3_key) {
        s3_key -> Text,
        next_attempt_at -> BigInt,
        attempts -> Integer,
        created_at -> BigInt,
    }
}

diesel::table! {
    instance_secrets (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    file_counts (project, env, visibility, owner_type, owner_id) {
        project -> Text,
        env -> Text,
        visibility -> Text,
        owner_type -> Text,
        owner_id -> Text,
        n -> BigInt,
        bytes -> BigInt,
    }
}

diesel::table! {
    /// Files and bytes per tenant, visibility and owner type, in stripes by
    /// owner (PostgreSQL 16, SQLite 1); kept by triggers on `files`
    /// (migration `list_counts`).
    tenant_counts (project, env, visibility, owner_type, stripe) {
        project -> Text,
        env -> Text,
        visibility -> Text,
        owner_type -> Text,
        stripe -> SmallInt,
        n -> BigInt,
        bytes -> BigInt,
    }
}

diesel::table! {
    /// How many `shared` files of each owner name each user, per tenant;
    /// kept by triggers on `files` (migration `list_counts`).
    share_counts (project, env, user_id, owner_type, owner_id) {
        project -> Text,
        env -> Text,
        user_id -> Text,
        owner_type -> Text,
        owner_id -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// SQLite only: one row per (file, user it is shared with), the index
    /// behind "shared with me" (PostgreSQL indexes `files.shared_with`).
    file_shares (file_id, user_id) {
        file_id -> Text,
        user_id -> Text,
        project -> Text,
        env -> Text,
    }
}

diesel::table! {
    /// The outbox (docs/api.md §10).
    events (seq) {
        seq -> BigInt,
        tx -> BigInt,
        id -> Text,
        project -> Text,
        env -> Text,
        kind -> Text,
        subject -> Text,
        body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        project -> Text,
        env -> Text,
        url -> Text,
        secret -> Text,
        event_types -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (endpoint_id, event_seq) {
        endpoint_id -> Text,
        event_seq -> BigInt,
        event_id -> Text,
        subject -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_until -> BigInt,
        retry_from -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webhook_attempts (endpoint_id, event_seq, attempt) {
        endpoint_id -> Text,
        event_seq -> BigInt,
        attempt -> Integer,
        at -> BigInt,
        status -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
    }
}

diesel::table! {
    derivatives (file_id, variant) {
        file_id -> Text,
        variant -> Text,
        s3_key -> Text,
        size -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> events (event_seq));

diesel::allow_tables_to_appear_in_same_query!(
    events,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    files,
    file_shares,
    derivatives,
    api_keys,
    uploads,
    object_deletions,
    instance_secrets,
    file_counts,
    share_counts,
    tenant_counts
);
