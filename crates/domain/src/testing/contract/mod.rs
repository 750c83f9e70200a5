//! The contract test kit: async checks of every MUST in [`crate::ports`],
//! each a public function runnable alone, panicking with the MUST it found
//! broken. An adapter crate gets one `#[test]` per check from
//! [`crate::repository_kit!`] or [`crate::object_store_kit!`] (each test on a
//! fresh fixture), or runs a whole port at once with [`file_repository`],
//! [`api_key_repository`] and [`object_store`]; [`file_service`] runs the use
//! cases end to end over any repository and store.
//!
//! Time: store checks set expiries from [`Transfer::now`] and let time pass
//! with [`Transfer::pass`] — the wall clock and a sleep by default; a store
//! on a clock of its own (the memory store on a `ManualClock`, see
//! `MemoryObjectStore::with_manual_clock`) answers both itself, so its expiry
//! checks take no time.

use async_trait::async_trait;

use crate::auth::{ApiKeyKind, ApiKeyRecord};
use crate::error::ErrorCode;
use crate::list::{Cursor, ListParams, ListQuery, MimeFilter, Scope, SortBy, SortDirection};
use crate::model::{Bucket, File, Owner, OwnerType, OwnerTypeFilter, Timestamp, Visibility};
use crate::ports::{
    ApiKeyRepository, CompletedPart, FileRepository, ObjectStore, PresignedRequest,
};
use crate::upload::UploadState;

use super::{file, fresh_tenant, pending_upload, user};

mod files;
mod keys;
mod listing;
mod outbox;
mod quota;
mod service;
mod store;
mod uploads;

pub use files::{
    concurrent_writers_one_wins, deletion_queue, derivative_maximum_holds_under_races,
    derivatives_follow_their_file, files_are_scoped_updated_and_deleted, instance_secrets,
};
pub use keys::api_key_repository;
pub use listing::{
    caller_listings_in_every_order, list_pagination_and_cursor, list_scope_filters_and_order,
    shared_totals_follow_share_changes, shares_made_during_a_walk_still_show,
};
pub use outbox::{
    a_failed_registration_records_no_event, outbox_holds_one_event_per_committed_change,
    webhook_repository,
};
pub use quota::{
    quotas_hold_when_registrations_race, usage_backfilled,
    usage_follows_registrations_changes_and_deletions,
};
pub use service::file_service;
pub use store::{
    checksums_bind_puts_parts_and_assemblies, multipart_assembles_parts_in_order,
    multipart_refuses_small_parts_and_aborts, object_store, presigned_urls_bind_and_round_trip,
    promote_moves_inside_the_store, put_bytes_stores_whole_objects,
    racing_part_uploads_leave_one_whole_part, read_prefix_reads_only_the_first_bytes, urls_expire,
    Transfer,
};
pub use uploads::{
    abandoned_uploads, registration_is_atomic_and_unique, uploads_are_recorded_and_scoped,
    uploads_issued_at_once_are_each_recorded,
};

/// Registers `file` with no cleanup, no quota and its `file.registered`
/// event: the plain registration most checks start from.
async fn register_plainly(repo: &dyn FileRepository, file: &File) -> crate::Result<()> {
    repo.register_file(
        file,
        None,
        &crate::quota::Quota::NONE,
        &crate::testing::registered_event(file),
    )
    .await
}

/// Deletes the file `id` as it is stored now (the compare-and-set of
/// [`FileRepository::delete_file`] on a fresh read); panics if it is not there.
async fn delete_as_stored(
    repo: &dyn FileRepository,
    tenant: &crate::model::Tenant,
    id: crate::model::FileId,
    now: Timestamp,
) -> File {
    let f = repo
        .get_file(tenant, id)
        .await
        .expect("get")
        .expect("the file to delete");
    repo.delete_file(&f, now, &crate::testing::deleted_event(&f))
        .await
        .expect("delete")
        .expect("deleted")
}

/// What a repository fixture gives the per-check tests of [`crate::repository_kit!`].
pub trait RepositoryFixture {
    /// The files/uploads repository under test.
    fn files(&self) -> &dyn FileRepository;
    /// The API-key repository under test.
    fn keys(&self) -> &dyn ApiKeyRepository;
}

/// What a store fixture gives the per-check tests of [`crate::object_store_kit!`].
pub trait StoreFixture {
    /// The store under test.
    fn store(&self) -> &dyn ObjectStore;
    /// How bytes move through its presigned requests.
    fn io(&self) -> &dyn Transfer;
    /// A key prefix the store accepts.
    fn prefix(&self) -> &str {
        "demo/dev/kit"
    }
}

/// "`health_check` succeeds on a live backend."
pub async fn repository_is_healthy(repo: &dyn FileRepository) {
    repo.health_check()
        .await
        .expect("health_check MUST succeed on a live backend");
}

/// One `#[tokio::test]` per check of the repository ports, each on a fresh
/// fixture: `$make` is an expression (evaluated in each test, `.await`
/// allowed) giving a value that implements [`RepositoryFixture`].
///
/// ```ignore
/// stowage_domain::repository_kit!(fixture().await);
/// // A backend that may be absent: `$make` gives an `Option`, `None` skips.
/// stowage_domain::repository_kit!(optional: fixture_if_reachable().await);
/// ```
#[macro_export]
macro_rules! repository_kit {
    ($make:expr) => {
        $crate::repository_kit!(optional: ::std::option::Option::Some($make));
    };
    (optional: $make:expr) => {
        mod repository_kit {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::testing::contract::RepositoryFixture as _;
            $crate::__kit_checks!(files, $make;
                uploads_are_recorded_and_scoped,
                uploads_issued_at_once_are_each_recorded,
                registration_is_atomic_and_unique,
                files_are_scoped_updated_and_deleted,
                deletion_queue,
                abandoned_uploads,
                instance_secrets,
                derivatives_follow_their_file,
                derivative_maximum_holds_under_races,
                list_scope_filters_and_order,
                list_pagination_and_cursor,
                caller_listings_in_every_order,
                shares_made_during_a_walk_still_show,
                shared_totals_follow_share_changes,
                concurrent_writers_one_wins,
                usage_follows_registrations_changes_and_deletions,
                quotas_hold_when_registrations_race,
                outbox_holds_one_event_per_committed_change,
                repository_is_healthy
            );
            $crate::__kit_checks!(keys, $make; api_key_repository);
        }
    };
}

/// One `#[tokio::test]` per check of the object store port, each on a fresh
/// fixture: `$make` gives a value that implements [`StoreFixture`].
#[macro_export]
macro_rules! object_store_kit {
    ($make:expr) => {
        $crate::object_store_kit!(optional: ::std::option::Option::Some($make));
    };
    (optional: $make:expr) => {
        mod object_store_kit {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use $crate::testing::contract::StoreFixture as _;
            $crate::__kit_checks!(store, $make;
                presigned_urls_bind_and_round_trip,
                promote_moves_inside_the_store,
                read_prefix_reads_only_the_first_bytes,
                put_bytes_stores_whole_objects,
                racing_part_uploads_leave_one_whole_part,
                urls_expire,
                multipart_assembles_parts_in_order,
                multipart_refuses_small_parts_and_aborts,
                checksums_bind_puts_parts_and_assemblies
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __kit_checks {
    (files, $make:expr; $($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let ::std::option::Option::Some(fixture) = $make else {
                return;
            };
            $crate::testing::contract::$check(fixture.files()).await;
        }
    )+};
    (keys, $make:expr; $($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let ::std::option::Option::Some(fixture) = $make else {
                return;
            };
            $crate::testing::contract::$check(fixture.keys()).await;
        }
    )+};
    (store, $make:expr; $($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let ::std::option::Option::Some(fixture) = $make else {
                return;
            };
            $crate::testing::contract::$check(fixture.store(), fixture.io(), fixture.prefix()).await;
        }
    )+};
}

fn code<T>(r: crate::Result<T>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

const T0: i64 = 1_700_000_000_000;

/// Runs every repository check.
pub async fn file_repository(repo: &dyn FileRepository) {
    uploads_are_recorded_and_scoped(repo).await;
    uploads_issued_at_once_are_each_recorded(repo).await;
    registration_is_atomic_and_unique(repo).await;
    files_are_scoped_updated_and_deleted(repo).await;
    deletion_queue(repo).await;
    abandoned_uploads(repo).await;
    instance_secrets(repo).await;
    derivatives_follow_their_file(repo).await;
    derivative_maximum_holds_under_races(repo).await;
    list_scope_filters_and_order(repo).await;
    list_pagination_and_cursor(repo).await;
    caller_listings_in_every_order(repo).await;
    shares_made_during_a_walk_still_show(repo).await;
    shared_totals_follow_share_changes(repo).await;
    concurrent_writers_one_wins(repo).await;
    outbox_holds_one_event_per_committed_change(repo).await;
    repository_is_healthy(repo).await;
}
