//! Each module's schema history, embedded in the binary: `migrations/<module>/{sqlite,postgres}/`.
//! A process applies only its local modules' migrations, so its database holds only their tables.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use shop_kernel::db::{Backend, Database, DbError};

use crate::config::Module;

#[cfg(feature = "identity")]
const IDENTITY: [EmbeddedMigrations; 2] = [
    diesel_migrations::embed_migrations!("migrations/identity/sqlite"),
    diesel_migrations::embed_migrations!("migrations/identity/postgres"),
];
#[cfg(feature = "catalog")]
const CATALOG: [EmbeddedMigrations; 2] = [
    diesel_migrations::embed_migrations!("migrations/catalog/sqlite"),
    diesel_migrations::embed_migrations!("migrations/catalog/postgres"),
];
#[cfg(feature = "inventory")]
const INVENTORY: [EmbeddedMigrations; 2] = [
    diesel_migrations::embed_migrations!("migrations/inventory/sqlite"),
    diesel_migrations::embed_migrations!("migrations/inventory/postgres"),
];

fn migrations(module: Module, backend: Backend) -> Option<EmbeddedMigrations> {
    let pick = |[sqlite, postgres]: [EmbeddedMigrations; 2]| match backend {
        Backend::Sqlite => sqlite,
        Backend::Postgres => postgres,
    };
    match module {
        #[cfg(feature = "identity")]
        Module::Identity => Some(pick(IDENTITY)),
        #[cfg(feature = "catalog")]
        Module::Catalog => Some(pick(CATALOG)),
        #[cfg(feature = "inventory")]
        Module::Inventory => Some(pick(INVENTORY)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Applies a module's pending migrations; returns how many ran.
pub fn run(db: &Database, module: Module) -> Result<usize, DbError> {
    let Some(source) = migrations(module, db.backend()) else {
        return Err(DbError::Migration(format!(
            "{module} is not compiled into this binary"
        )));
    };
    let mut conn = db.get()?;
    let applied = conn
        .run_pending_migrations(source)
        .map_err(|e| DbError::Migration(format!("{module}: {e}")))?;
    if !applied.is_empty() {
        tracing::info!(
            module = module.name(),
            count = applied.len(),
            "applied migrations"
        );
    }
    Ok(applied.len())
}
