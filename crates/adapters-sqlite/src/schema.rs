//! Diesel table definitions matching `migrations/sqlite`.

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
        shared_with -> Text,
        metadata -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    file_shares (file_id, user_id) {
        file_id -> Text,
        user_id -> Text,
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

diesel::joinable!(file_shares -> files (file_id));
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
    file_counts,
    api_keys,
    uploads,
    files,
    file_shares,
    object_deletions
);
