//! The tables whose definition is the same on every backend (`migrations/*`).
//! Each adapter adds its own `files` table (its share list and metadata types
//! differ) and lets it appear in queries with these.

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
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    uploads,
    object_deletions,
    instance_secrets,
    file_counts
);
