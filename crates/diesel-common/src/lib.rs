//! What the SQLite and PostgreSQL adapters share, written once as plain,
//! type-checked Rust (docs/architecture.md, "The diesel layer").
#![forbid(unsafe_code)]

pub mod conn;
pub mod events;
pub mod list;
pub mod repository;
pub mod rows;
pub mod schema;
pub mod statements;
pub mod transfer;
pub mod types;

pub use conn::DbConn;
pub use list::Db;
pub use repository::{
    add_derivative_in, apply_file_update, delete_counted, first, on_duplicate, unclaimed, usage_of,
    within_quota, Backend, DieselRepository, PoolFactory, TxError,
};
