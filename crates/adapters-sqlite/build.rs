//! Rebuilds the crate when a migration is added or changed: `embed_migrations!`
//! reads the folder at compile time, and Cargo cannot see that by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
