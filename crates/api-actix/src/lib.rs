//! Stowage's HTTP layer on actix-web, its configuration, and the `stowage` CLI.
//! The composition root: the only crate that knows every adapter.

pub mod app;
pub mod backup;
pub mod bodies;
pub mod cli;
pub mod compose;
pub mod config;
pub mod error;
pub mod extract;
pub mod images;
pub mod jwt;
pub mod memory;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod transfer;
pub mod upload_gate;
pub mod webhooks;
pub mod wire;
pub mod worker;
