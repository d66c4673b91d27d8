//! Rebuilds the binary when a migration is added: `embed_migrations!` embeds the files it found, and a
//! new directory under `migrations/` would otherwise go unnoticed until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
