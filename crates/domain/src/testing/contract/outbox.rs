//! Checks of the outbox: one event per committed change, none for a change
//! refused or rolled back, read back in commit order.

use super::*;
use crate::events::{Event, EventCursor, EventType, StoredEvent};

/// The events of `tenant` after `from`, in the order the outbox gives them.
async fn events_of(
    repo: &dyn FileRepository,
    tenant: &crate::model::Tenant,
    from: EventCursor,
) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut cursor = from;
    loop {
        let batch = repo.events_after(cursor, 50).await.expect("events_after");
        let Some(last) = batch.last() else { break };
        assert!(
            batch.len() <= 50,
            "events_after MUST return at most `limit` events"
        );
        for pair in batch.windows(2) {
            assert!(
                pair[0].cursor < pair[1].cursor,
                "events_after MUST return events in cursor order"
            );
        }
        assert!(
            batch[0].cursor > cursor,
            "events_after MUST return only events after the cursor"
        );
        cursor = last.cursor;
        out.extend(batch.into_iter().filter(|e| &e.event.tenant == tenant));
    }
    out
}

/// [`events_of`] once it holds at least `n` events, or after 10 s: an
/// event's place becomes final (readable) only once every transaction that
/// could commit before it has ended, which on a shared database server
/// (PostgreSQL) includes other sessions' transactions.
async fn events_settled(
    repo: &dyn FileRepository,
    tenant: &crate::model::Tenant,
    from: EventCursor,
    n: usize,
) -> Vec<StoredEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = events_of(repo, tenant, from).await;
        if got.len() >= n || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn ids(events: &[StoredEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.event.id).collect()
}

pub async fn outbox_holds_one_event_per_committed_change(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let start = repo
        .last_event()
        .await
        .expect("last_event")
        .unwrap_or_default();
    let key = format!("{}/dev/h/ev/a.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let f = file(&t, &alice, &key, "a.txt", Visibility::Private, now);
    let registered = crate::testing::registered_event(&f);
    repo.register_file(&f, None, &crate::quota::Quota::NONE, &registered)
        .await
        .expect("register");

    // Refused changes record nothing.
    let again = crate::testing::registered_event(&f);
    assert!(repo
        .register_file(&f, None, &crate::quota::Quota::NONE, &again)
        .await
        .is_err());
    let key2 = format!("{}/dev/h/ev/b.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key2, now))
        .await
        .expect("insert");
    let over = file(&t, &alice, &key2, "b.txt", Visibility::Private, now);
    let tight = crate::quota::Quota {
        user: crate::quota::Limit {
            files: Some(1),
            bytes: None,
        },
        ..crate::quota::Quota::NONE
    };
    let refused = crate::testing::registered_event(&over);
    assert_eq!(
        code(
            repo.register_file(&over, None, &tight, &refused)
                .await
                .map(|()| true)
        ),
        Some(ErrorCode::QuotaExceeded)
    );
    let mut changed = f.clone();
    changed.original_name = "renamed.txt".into();
    changed.updated_at = now.plus_secs(1);
    let stale_event = crate::testing::updated_event(&changed);
    assert_eq!(
        repo.update_file(&changed, now.plus_secs(9), &stale_event)
            .await
            .ok(),
        Some(false)
    );
    let updated = crate::testing::updated_event(&changed);
    assert_eq!(
        repo.update_file(&changed, f.updated_at, &updated)
            .await
            .ok(),
        Some(true)
    );
    let stale_delete = crate::testing::deleted_event(&f);
    assert_eq!(
        repo.delete_file(&f, now, &stale_delete)
            .await
            .expect("delete"),
        None
    );
    let deleted = crate::testing::deleted_event(&changed);
    assert!(repo
        .delete_file(&changed, now, &deleted)
        .await
        .expect("delete")
        .is_some());
    let expired = Event::upload_expired(uuid::Uuid::now_v7(), now, &t, &key2, None);
    assert!(!repo
        .transition_upload(
            &t,
            &key2,
            UploadState::Completed,
            UploadState::Aborted,
            Some(&expired)
        )
        .await
        .expect("transition"));
    assert!(repo
        .transition_upload(
            &t,
            &key2,
            UploadState::Pending,
            UploadState::Aborted,
            Some(&expired)
        )
        .await
        .expect("transition"));

    let events = events_settled(repo, &t, start, 4).await;
    assert_eq!(
        ids(&events),
        vec![registered.id, updated.id, deleted.id, expired.id],
        "the outbox MUST hold exactly one event per committed change, in commit order, \
         and none for a refused one"
    );
    let kinds: Vec<EventType> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::FileRegistered,
            EventType::FileUpdated,
            EventType::FileDeleted,
            EventType::UploadExpired
        ]
    );
    for (stored, sent) in events
        .iter()
        .zip([&registered, &updated, &deleted, &expired])
    {
        assert_eq!(
            &stored.event, sent,
            "an event MUST read back as it was recorded"
        );
    }
    let last = repo.last_event().await.expect("last_event");
    assert!(
        last.is_some_and(|l| l >= events[3].cursor),
        "last_event MUST be at or after the last event committed"
    );
    assert_eq!(
        ids(&events_settled(repo, &t, events[1].cursor, 2).await),
        vec![deleted.id, expired.id],
        "reading from a cursor MUST resume after it"
    );
}

/// "A change whose transaction fails after its event was written leaves no
/// event": run on a repository whose count update the caller has made fail
/// (a planted trigger), so registration fails after recording its event.
pub async fn a_failed_registration_records_no_event(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let start = repo
        .last_event()
        .await
        .expect("last_event")
        .unwrap_or_default();
    let key = format!("{}/dev/h/ev/fail.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let f = file(&t, &alice, &key, "fail.txt", Visibility::Private, now);
    let event = crate::testing::registered_event(&f);
    assert!(
        repo.register_file(&f, None, &crate::quota::Quota::NONE, &event)
            .await
            .is_err(),
        "the planted failure must make registration fail"
    );
    assert!(
        events_of(repo, &t, start).await.is_empty(),
        "an event MUST NOT outlive the failed transaction of its change"
    );
    assert_eq!(repo.get_file(&t, f.id).await.expect("get"), None);
    assert_eq!(
        repo.find_upload(&t, &key)
            .await
            .expect("find")
            .map(|u| u.state),
        Some(UploadState::Pending),
        "nothing of a failed registration is written"
    );
}

/// Every MUST of [`crate::ports::WebhookRepository`], over the file
/// repository of the same database (whose writes make the deliveries).
pub async fn webhook_repository(
    files: &dyn FileRepository,
    hooks: &dyn crate::ports::WebhookRepository,
) {
    use crate::webhooks::{AttemptResult, DeliveryState, WebhookEndpoint, WebhookSecret};
    let t = fresh_tenant();
    let other = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let endpoint = |tenant: &crate::model::Tenant, events: Vec<EventType>| WebhookEndpoint {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.clone(),
        url: "https://example.com/hooks".into(),
        secret: WebhookSecret::from_bytes(vec![42; 32]).expect("secret"),
        events,
        created_at: now,
    };
    let all = endpoint(&t, vec![]);
    let deletions = endpoint(&t, vec![EventType::FileDeleted]);
    let elsewhere = endpoint(&other, vec![]);
    for e in [&all, &deletions, &elsewhere] {
        hooks.add_endpoint(e).await.expect("add endpoint");
    }
    let listed = hooks.endpoints().await.expect("endpoints");
    assert!(
        listed.contains(&all) && listed.contains(&deletions) && listed.contains(&elsewhere),
        "endpoints MUST list what was added, as added"
    );
    let mine = [all.id.clone(), deletions.id.clone(), elsewhere.id.clone()];
    let claim = |at: Timestamp, limit: u32| {
        let mine = mine.clone();
        async move {
            hooks
                .claim_deliveries(at, at.plus_secs(60), limit)
                .await
                .expect("claim")
                .into_iter()
                .filter(|d| mine.contains(&d.endpoint_id))
                .collect::<Vec<_>>()
        }
    };

    // Two files; the first registered then renamed.
    let mut made = Vec::new();
    for name in ["one.txt", "two.txt"] {
        let key = format!("{}/dev/h/wh/{name}", t.project);
        files
            .insert_upload(&pending_upload(&t, &alice, &key, now))
            .await
            .expect("insert");
        let f = file(&t, &alice, &key, name, Visibility::Private, now);
        let e = crate::testing::registered_event(&f);
        files
            .register_file(&f, None, &crate::quota::Quota::NONE, &e)
            .await
            .expect("register");
        made.push((f, e));
    }
    let mut renamed = made[0].0.clone();
    renamed.original_name = "renamed.txt".into();
    renamed.updated_at = now.plus_secs(1);
    let update = crate::testing::updated_event(&renamed);
    assert_eq!(
        files.update_file(&renamed, now, &update).await.ok(),
        Some(true)
    );

    assert_eq!(
        hooks.any_due(now).await.ok(),
        Some(true),
        "any_due MUST see a pending delivery that is due"
    );
    let first = claim(now, 50).await;
    let got: Vec<(&str, &str)> = first
        .iter()
        .map(|d| (d.endpoint_id.as_str(), d.event_id.as_str()))
        .collect();
    let (reg1, reg2) = (made[0].1.id.to_string(), made[1].1.id.to_string());
    assert_eq!(
        got,
        vec![
            (all.id.as_str(), reg1.as_str()),
            (all.id.as_str(), reg2.as_str())
        ],
        "a change MUST make one delivery per endpoint of its tenant that wants its type, \
         and a file's later event MUST wait for its earlier one"
    );
    assert!(first.iter().all(|d| d.attempt == 1));
    assert_eq!(
        first[0].body,
        made[0].1.body(),
        "the delivery MUST carry the event's body"
    );
    assert!(
        claim(now, 50).await.is_empty(),
        "a leased delivery MUST NOT be claimed again"
    );
    assert_eq!(
        hooks.any_due(now).await.ok(),
        Some(false),
        "any_due MUST NOT count leased deliveries"
    );

    // A failed attempt comes back when due; the file's next event still waits.
    let failed = AttemptResult {
        at: now,
        status: Some(500),
        error: Some("HTTP 500".into()),
        duration_ms: 3,
        next: DeliveryState::Pending,
        next_attempt: Some(now.plus_secs(5)),
    };
    hooks
        .record_attempt(&first[0], &failed)
        .await
        .expect("record");
    let delivered = |at: Timestamp| AttemptResult {
        at,
        status: Some(204),
        error: None,
        duration_ms: 2,
        next: DeliveryState::Delivered,
        next_attempt: None,
    };
    hooks
        .record_attempt(&first[1], &delivered(now))
        .await
        .expect("record");
    assert!(
        claim(now.plus_secs(1), 50).await.is_empty(),
        "not due yet, and in order"
    );
    let retry = claim(now.plus_secs(5), 50).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].event_id.as_str(), retry[0].attempt),
        (reg1.as_str(), 2)
    );
    hooks
        .record_attempt(&retry[0], &delivered(now.plus_secs(5)))
        .await
        .expect("record");
    let next = claim(now.plus_secs(5), 50).await;
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].event_id,
        update.id.to_string(),
        "then the file's next event"
    );

    // A lease that runs out (a crash mid-attempt) is claimed again.
    let again = claim(now.plus_secs(65), 50).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    // The stale attempt's result no longer moves it.
    hooks
        .record_attempt(&next[0], &delivered(now.plus_secs(66)))
        .await
        .expect("record");
    let gave_up = AttemptResult {
        next: DeliveryState::Failed,
        next_attempt: None,
        ..failed.clone()
    };
    hooks
        .record_attempt(&again[0], &gave_up)
        .await
        .expect("record");
    assert!(
        claim(now.plus_secs(999), 50).await.is_empty(),
        "failed is final"
    );
    let log = hooks.attempts(&all.id, 10).await.expect("attempts");
    assert!(
        log.iter().any(|a| a.event_id == update.id.to_string()
            && a.state == DeliveryState::Failed
            && a.status == Some(500)),
        "attempts MUST list each attempt with its delivery's state: {log:?}"
    );
    assert!(log.len() >= 4, "{log:?}");
    assert_eq!(
        hooks
            .redeliver(&update.id.to_string(), now.plus_secs(1000))
            .await
            .ok(),
        Some(1)
    );
    let redo = claim(now.plus_secs(1000), 50).await;
    assert_eq!(redo.len(), 1, "a redelivered event MUST be pending and due");
    assert_eq!(redo[0].retry_from, now.plus_secs(1000));

    // Racing claims share the due deliveries without overlap.
    let mut keys = Vec::new();
    for i in 0..12 {
        let key = format!("{}/dev/h/wh/r{i}.txt", t.project);
        files
            .insert_upload(&pending_upload(&t, &alice, &key, now))
            .await
            .expect("insert");
        let f = file(&t, &alice, &key, "r.txt", Visibility::Private, now);
        let e = crate::testing::registered_event(&f);
        files
            .register_file(&f, None, &crate::quota::Quota::NONE, &e)
            .await
            .expect("register");
        keys.push(e.id.to_string());
    }
    let later = now.plus_secs(2000);
    let (a, b) = tokio::join!(claim(later, 8), claim(later, 8));
    let mut claimed: Vec<String> = a.iter().chain(&b).map(|d| d.event_id.clone()).collect();
    claimed.sort();
    let n = claimed.len();
    claimed.dedup();
    assert_eq!(
        n,
        claimed.len(),
        "racing claims MUST NOT both get one delivery"
    );
    assert!(n >= 8, "racing claims still claim");

    assert_eq!(hooks.remove_endpoint(&all.id).await.ok(), Some(true));
    assert_eq!(hooks.remove_endpoint(&all.id).await.ok(), Some(false));
    assert!(
        claim(later.plus_secs(999), 50).await.is_empty(),
        "a removed endpoint's deliveries go"
    );
    let start = EventCursor::default();
    assert!(!events_settled(files, &t, start, 1).await.is_empty());
    hooks
        .prune(later.plus_secs(10_000_000))
        .await
        .expect("prune");
    assert!(
        events_of(files, &t, start).await.is_empty(),
        "prune MUST remove old events no delivery needs"
    );
    for e in [&deletions, &elsewhere] {
        hooks.remove_endpoint(&e.id).await.expect("remove");
    }
}
