//! Diesel table definitions matching `migrations/sqlite`.

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

diesel::joinable!(file_shares -> files (file_id));

// The tables shared with the other backend are `stowage_diesel_common::schema`.

diesel::allow_tables_to_appear_in_same_query!(files, file_shares);
