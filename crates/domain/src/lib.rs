//! Stowage's domain: the file model, the access rules of docs/api.md §5, the limits of
//! §6, the error codes of §2, the ports adapters implement, and the use cases.
//!
//! This crate performs no I/O. Adapters (SQLite, PostgreSQL, local disk, S3)
//! implement [`ports`]; the HTTP layer calls [`service::FileService`] and
//! [`auth::Authenticator`].
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The README's examples use the in-memory adapters and mocks of `testing`,
// so they are the crate's docs (and run as doctests) with that feature.
#![cfg_attr(feature = "testing", doc = include_str!("../README.md"))]

pub mod access;
pub mod auth;
pub mod content;
pub mod error;
pub mod events;
pub mod image;
pub mod keys;
pub mod limits;
pub mod list;
pub mod metadata;
pub mod model;
pub mod ports;
pub mod quota;
pub mod service;
pub mod text;
pub mod upload;
pub mod validation;
pub mod webhooks;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use error::{Error, ErrorCode, ErrorKind, Result};
