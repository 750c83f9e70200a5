//! Diesel table definitions matching `migrations/postgres`.

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
        shared_with -> Array<Text>,
        metadata -> Jsonb,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

stowage_diesel_common::shared_tables!();

diesel::allow_tables_to_appear_in_same_query!(
    file_counts,
    api_keys,
    uploads,
    files,
    object_deletions,
    instance_secrets
);
