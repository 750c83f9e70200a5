//! Black-box end-to-end tests: each test starts the real `stowage` binary on a
//! free port with its own data folder, creates keys and tokens through its CLI,
//! and talks to it over HTTP only, moving bytes through the presigned URLs.

mod access;
mod backup;
mod checksums;
mod envelope;
mod errors;
mod faults;
mod flow;
mod gateway;
mod helpers;
mod hostile;
mod images;
mod integrity;
mod multipart;
mod public;
mod quotas;
mod reliability;
mod replicas;
mod s3;
mod transfer;
mod webhooks;
