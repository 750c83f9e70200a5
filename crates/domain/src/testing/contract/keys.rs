//! Checks of the API-key repository.

use super::*;

/// Runs every API key repository check.
pub async fn api_key_repository(repo: &dyn ApiKeyRepository) {
    let t = fresh_tenant();
    let rec = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key_hash: crate::auth::hash_key(&uuid::Uuid::new_v4().to_string()),
        tenant: t.clone(),
        kind: ApiKeyKind::Publishable,
        created_at: Timestamp::from_millis(T0),
        expires_at: Some(Timestamp::from_millis(T0 + 1000)),
        revoked_at: None,
    };
    repo.insert_key(&rec).await.expect("insert_key");
    let twin = ApiKeyRecord {
        kind: ApiKeyKind::Secret,
        ..rec.clone()
    };
    assert_eq!(
        code(repo.insert_key(&twin).await),
        Some(ErrorCode::Internal),
        "a duplicate key MUST be refused as an internal fault (not as a file conflict)"
    );
    assert_eq!(
        repo.find_by_hash(&rec.key_hash).await.expect("find"),
        Some(rec.clone()),
        "keys round-trip"
    );
    assert_eq!(repo.find_by_hash("00").await.expect("find"), None);
    assert!(repo.list_keys().await.expect("list").contains(&rec));
    assert!(repo
        .revoke_key(&rec.id, Timestamp::from_millis(T0 + 5))
        .await
        .expect("revoke"));
    assert!(
        !repo
            .revoke_key(&rec.id, Timestamp::from_millis(T0 + 6))
            .await
            .expect("revoke"),
        "revoking twice reports false"
    );
    assert_eq!(
        repo.find_by_hash(&rec.key_hash)
            .await
            .expect("find")
            .and_then(|k| k.revoked_at),
        Some(Timestamp::from_millis(T0 + 5))
    );
}
