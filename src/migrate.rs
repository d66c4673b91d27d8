//! Each module's schema history, embedded in the binary (`migrations/<module>/{sqlite,postgres}/`, named by
//! the module table).
//! A process applies only its local modules' migrations, so its database holds only their tables.

use diesel::RunQueryDsl;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use shop_kernel::db::{Backend, Database, DbConn, DbError, write_transaction};

use crate::config::Module;

fn migrations(module: Module, backend: Backend) -> Option<EmbeddedMigrations> {
    (module.def().migrations)(backend)
}

/// The advisory-lock key migrations hold on PostgreSQL ("shop" in ASCII).
const MIGRATION_LOCK: i64 = 0x73686f70;

/// Applies a module's pending migrations; returns how many ran.
pub fn run(db: &Database, module: Module) -> Result<usize, DbError> {
    let Some(source) = migrations(module, db.backend()) else {
        return Err(DbError::Migration(format!(
            "{module} is not compiled into this binary"
        )));
    };
    let mut conn = db.get()?;
    let run = |c: &mut DbConn| -> Result<usize, DbError> {
        c.run_pending_migrations(source)
            .map(|versions| versions.len())
            .map_err(|e| DbError::Migration(format!("{module}: {e}")))
    };
    // Several instances may start at once; each migration must run exactly once. PostgreSQL: they take
    // turns under a session advisory lock. SQLite: one immediate transaction holds the write lock from the
    // check for pending migrations to the last one applied.
    let applied = match db.backend() {
        Backend::Postgres => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .execute(&mut *conn)?;
            let applied = run(&mut conn);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .execute(&mut *conn)?;
            applied
        }
        Backend::Sqlite => write_transaction(&mut conn, run),
    };
    let applied = applied?;
    if applied > 0 {
        tracing::info!(
            module = module.name(),
            count = applied,
            "applied migrations"
        );
    }
    Ok(applied)
}
