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

// The tables shared with the other backend are `stowage_diesel_common::schema`.
