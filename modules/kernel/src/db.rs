//! One connection type for SQLite and PostgreSQL, a pool, and the blocking-pool bridge.
//!
//! diesel is blocking: every query runs through [`Database::run`] on tokio's blocking pool, never on an
//! actix worker thread.

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, MultiConnection};

/// A connection to either backend; every module query is written once against it.
#[derive(MultiConnection)]
pub enum DbConn {
    /// PostgreSQL (production).
    Pg(PgConnection),
    /// SQLite (the embedded default).
    Sqlite(SqliteConnection),
}

/// Runs a query written once on the backend's own connection type: `on_backend!(conn, |c| query.first(c))`.
///
/// Through `DbConn` (diesel's `MultiConnection`) every call serialises the query's SQL and walks it again
/// to collect binds before the statement cache can be asked: a third of the instructions of a product
/// read. On the concrete connection a query of static shape is found in the cache by its type, with no
/// SQL built. Worth it on hot reads; the body must compile for both backends, which it does when it is
/// written with diesel's query builder.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `sqlite://<path>`.
    Sqlite,
}

/// Database failures; modules map them to their own `Internal` variant.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error("unsupported database URL (expected sqlite://<path> or postgres://...): {0}")]
    UnsupportedUrl(String),
    /// Could not connect or get a pooled connection.
    #[error("database connection failed: {0}")]
    Connection(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The blocking task was cancelled or panicked.
    #[error("database task failed: {0}")]
    Task(String),
    /// A write kept losing insert races to concurrent transactions (503: retry later).
    #[error("too much contention: {0}")]
    Contention(String),
}

impl Backend {
    /// The backend a URL names.
    pub fn of_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite://") {
            Ok(Backend::Sqlite)
        } else {
            Err(DbError::UnsupportedUrl(redact(url)))
        }
    }
}

/// The URL with any password replaced, for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Opens connections, choosing the backend from the URL scheme (so PostgreSQL errors stay readable).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
    backend: Backend,
}

impl ConnectionManager {
    fn establish(&self) -> Result<DbConn, DbError> {
        match self.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::establish(&self.url)
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                // diesel prepares each statement once per connection, and by default PostgreSQL still plans
                // it again on every execution whenever a plan built for the actual parameters looks cheaper
                // than the generic one: a listing's `LIMIT $1` or a search's `LIKE $1` always does, so their
                // planning cost as much as running them (pgbench, listing: 25,000 tps against 35,000 with
                // the generic plan). The statements diesel caches here are key lookups, keyed updates and walks
                // in key order, whose plans do not depend on their parameters (the search orders its index
                // part so that it cannot be walked in key order), so each is planned once. Raw SQL is never
                // cached: it is planned for its parameters on every execution, as before.
                conn.batch_execute("SET plan_cache_mode = force_generic_plan")
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                Ok(DbConn::Pg(conn))
            }
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                // WAL lets readers run beside the writer; the busy timeout makes writers queue instead of
                // failing with "database is locked".
                conn.batch_execute("PRAGMA busy_timeout = 10000;")
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                // Switching to WAL needs an exclusive lock, and SQLite may answer "locked" at once (without
                // its busy handler) while another process opens or migrates the same new file: retry briefly.
                let mut attempts = 0;
                loop {
                    match conn.batch_execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    ) {
                        Ok(()) => break,
                        Err(e) if attempts < 200 && e.to_string().contains("locked") => {
                            attempts += 1;
                            std::thread::sleep(Duration::from_millis(25));
                        }
                        Err(e) => return Err(DbError::Connection(e.to_string())),
                    }
                }
                // Reads map the file (up to 1 GiB) instead of copying each page in with a system call into a
                // 2 MB cache per connection: at a million products (a 550 MB file) a product read drops to 0.7
                // of its speed at ten thousand without it, and stays within a few per cent with it. The pages
                // are the OS page cache, shared by the connections; they count in RSS once touched.
                conn.batch_execute("PRAGMA mmap_size = 1073741824;")
                    .map_err(|e| DbError::Connection(e.to_string()))?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// A connection pool plus the facts modules need about it.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    /// One permit per pooled connection: work waits for a connection here, as a task, not as a blocking
    /// thread parked on the pool's condition variable (one thread per waiting request, each woken in turn).
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// Longest wait for a connection in [`Database::run`]: for a permit, then for the pool to hand one out.
    acquire_timeout: Duration,
    backend: Backend,
}

/// How long [`Database::run`] waits for a connection unless told otherwise (r2d2's own checkout bound).
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Database {
    /// Connects a pool of at most `max_connections`; for SQLite, creates the file's directory first.
    pub fn connect(url: &str, max_connections: u32) -> Result<Database, DbError> {
        let backend = Backend::of_url(url)?;
        if backend == Backend::Sqlite {
            let path = Path::new(url.trim_start_matches("sqlite://"));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Connection(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let manager = ConnectionManager {
            url: url.to_string(),
            backend,
        };
        // Fail fast with the real error instead of r2d2's generic timeout.
        manager.establish()?;
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            // No background replenishing: connections are opened on demand, so no pool thread is left
            // connecting while a database goes away or the process exits.
            .min_idle(Some(0))
            // No ping before every checkout: it doubled the statements per request. A connection that broke
            // while idle fails its first query, is reported by `has_broken` and replaced.
            .test_on_check_out(false)
            .connection_timeout(DEFAULT_ACQUIRE_TIMEOUT)
            .build(manager)
            .map_err(|e| DbError::Connection(e.to_string()))?;
        Ok(Database {
            pool,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections as usize)),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            backend,
        })
    }

    /// The same pool, whose [`Database::run`] gives up waiting for a connection after `bound`
    /// (`DbError::Connection`, which modules answer `503 unavailable`): a saturated or unreachable
    /// database sheds load instead of stacking up requests that their clients have long given up on.
    pub fn with_acquire_timeout(mut self, bound: Duration) -> Database {
        self.acquire_timeout = bound;
        self
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks out a connection on the current thread (blocking; for the CLI and migrations).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Connection(e.to_string()))
    }

    /// Runs blocking database work on the blocking pool and awaits its result.
    ///
    /// Waiting for a connection is bounded (see [`Database::with_acquire_timeout`]); past the bound this
    /// fails with `DbError::Connection` before `f` starts. Once `f` has started it runs to its end even
    /// if the awaiting future is dropped (a request cut off by a timeout, or a client gone): a
    /// transaction inside it commits or rolls back whole, never half.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let permit =
            match tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(e)) => return Err(E::from(DbError::Task(e.to_string()))),
                Err(_) => return Err(E::from(self.no_connection_within())),
            };
        let pool = self.pool.clone();
        let left = self.acquire_timeout.saturating_sub(started.elapsed());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // r2d2 hands out an idle connection even when no time is left; only opening a new one (a
            // database that is slow to accept, or down) waits, for what remains of the bound.
            let mut conn = pool
                .get_timeout(left)
                .map_err(|e| E::from(DbError::Connection(e.to_string())))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    fn no_connection_within(&self) -> DbError {
        DbError::Connection(format!(
            "no connection was free within {} ms (SHOP_DB_ACQUIRE_TIMEOUT_MS)",
            self.acquire_timeout.as_millis()
        ))
    }

    /// True when a connection can be checked out and answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.ping().map_err(DbError::Query).map(|_| ()))
            .await
    }
}

/// Runs `f` in a write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, so a transaction that reads
/// before it writes takes the write lock up front and waits its turn, instead of failing with
/// "database is locked" when it later tries to upgrade.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    if let DbConn::Pg(_) = conn {
        return conn.transaction(f);
    }
    // The multi-connection's transaction manager delegates to the inner connection's, so nested
    // `transaction` calls inside `f` become savepoints as usual.
    if let DbConn::Sqlite(inner) = conn {
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
    }
    match f(conn) {
        Ok(value) => {
            <DbConn as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            <DbConn as Connection>::TransactionManager::rollback_transaction(conn)?;
            Err(e)
        }
    }
}

/// Why a write transaction failed: it lost a race to a concurrent transaction (run it again), or the
/// module's error `E`. Module errors convert into it (`module_error!` writes the `From`).
#[derive(Debug)]
pub enum TxError<E> {
    /// A concurrent transaction won: a unique key this one inserted was inserted first, or the database
    /// rolled this one back to let another go on (a deadlock, a serialization failure, SQLite's busy
    /// lock). Nothing of it was written; running it again decides from what the winner wrote.
    LostRace,
    /// Any other failure.
    Fail(E),
}

impl<E: From<diesel::result::Error>> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        if is_unique_violation(&e) || fault(&e) == Some(Fault::RolledBack) {
            TxError::LostRace
        } else {
            TxError::Fail(E::from(e))
        }
    }
}

/// How often [`retry_lost_races`] runs a transaction before it answers `Contention` (503).
const RACE_ATTEMPTS: u32 = 4;

/// Runs `f` in a write transaction, again (up to four times in all) if it lost a race: the retry sees the
/// winner's rows and decides from them. Only a whole transaction is run again, never a part of one, so
/// this is safe for any `f` whose effects are its statements.
pub fn retry_lost_races<T, E>(
    conn: &mut DbConn,
    mut f: impl FnMut(&mut DbConn) -> Result<T, TxError<E>>,
) -> Result<T, E>
where
    E: From<diesel::result::Error> + From<DbError>,
{
    for attempt in 1..=RACE_ATTEMPTS {
        match write_transaction(conn, &mut f) {
            Ok(value) => return Ok(value),
            Err(TxError::Fail(e)) => return Err(e),
            // A short pause lets the winner of a deadlock finish before this one locks again.
            Err(TxError::LostRace) if attempt < RACE_ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
            }
            Err(TxError::LostRace) => {}
        }
    }
    Err(E::from(DbError::Contention(
        "kept losing races to concurrent transactions".into(),
    )))
}

/// A database failure that says nothing about the request: the same statement may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database rolled the whole transaction back to let another one go on: a deadlock (40P01), a
    /// serialization failure (40001), a lock timeout (55P03), SQLite's busy or locked database. Running
    /// the transaction again is safe.
    RolledBack,
    /// The connection or statement was cut short: the connection was lost, the server is shutting down
    /// (57P01), the statement was cancelled or timed out (57014). A commit cut short may or may not have
    /// happened, so it is not run again here: the caller hears 503 and retries an idempotent call.
    Interrupted,
}

/// Whether `e` is a transient fault of the database, and which. Anything else (a constraint, a syntax
/// error, a value that cannot be decoded) is a refusal or a bug, the same on every try.
///
/// PostgreSQL's SQLSTATE is not exposed by diesel beyond a few kinds, so deadlocks, timeouts and
/// shutdowns are told by the server's message, which is English unless `lc_messages` says otherwise (the
/// servers shop connects to keep the default).
pub fn fault(e: &diesel::result::Error) -> Option<Fault> {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Some(Fault::RolledBack),
        Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        )
        | Error::BrokenTransactionManager => Some(Fault::Interrupted),
        Error::DatabaseError(_, info) => {
            let message = info.message();
            const ROLLED_BACK: [&str; 5] = [
                "deadlock detected",
                "could not serialize access",
                "lock timeout",
                "database is locked",
                "database table is locked",
            ];
            const INTERRUPTED: [&str; 4] = [
                "statement timeout",
                "canceling statement",
                "terminating connection",
                "server closed the connection",
            ];
            if ROLLED_BACK.iter().any(|m| message.contains(m)) {
                Some(Fault::RolledBack)
            } else if INTERRUPTED.iter().any(|m| message.contains(m)) {
                Some(Fault::Interrupted)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// True for a unique-constraint violation, on either backend.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The current time truncated to microseconds, the precision both backends store.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::Timelike::with_nanosecond(&now, now.and_utc().timestamp_subsec_micros() * 1000)
        .unwrap_or(now)
}

/// A `Timestamp` column read into a `NaiveDateTime` field: `#[diesel(deserialize_as = StoredTime)]`.
///
/// diesel reads a SQLite timestamp with chrono's format-string parser, about 2,000 instructions each: a
/// product listing reads forty, a fifth of its instructions. The form diesel and
/// SQLite's `datetime()` write, `YYYY-MM-DD HH:MM:SS` with an optional fraction (or `T` between date and
/// time), is read here directly; any other text goes to diesel's parser as before. PostgreSQL sends
/// timestamps in binary, read as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct StoredTime(chrono::NaiveDateTime);

impl From<StoredTime> for chrono::NaiveDateTime {
    fn from(t: StoredTime) -> Self {
        t.0
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::pg::Pg> for StoredTime {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <chrono::NaiveDateTime as diesel::deserialize::FromSql<
            diesel::sql_types::Timestamp,
            diesel::pg::Pg,
        >>::from_sql(value)
        .map(StoredTime)
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamp, diesel::sqlite::Sqlite>
    for StoredTime
{
    fn from_sql(
        mut value: <diesel::sqlite::Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> diesel::deserialize::Result<Self> {
        if let Some(at) = sqlite_timestamp(value.read_text()) {
            return Ok(StoredTime(at));
        }
        <chrono::NaiveDateTime as diesel::deserialize::FromSql<
            diesel::sql_types::Timestamp,
            diesel::sqlite::Sqlite,
        >>::from_sql(value)
        .map(StoredTime)
    }
}

impl diesel::deserialize::FromSql<diesel::sql_types::Timestamp, MultiBackend> for StoredTime {
    fn from_sql(value: MultiRawValue<'_>) -> diesel::deserialize::Result<Self> {
        value.from_sql::<Self, diesel::sql_types::Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f]` (1 to 9 fraction digits; `T` may stand for the space), or None.
fn sqlite_timestamp(text: &str) -> Option<chrono::NaiveDateTime> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let punctuated = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b' ' | b'T')
        && b[13] == b':'
        && b[16] == b':';
    if !punctuated {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20, b.len())? * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        nanos,
    )?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://shop:secret@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(redact("postgres://db/shop"), "postgres://db/shop");
        assert_eq!(redact("sqlite://data/shop.db"), "sqlite://data/shop.db");
    }

    #[test]
    fn backends_are_chosen_by_scheme() {
        assert_eq!(Backend::of_url("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_url("postgresql://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::of_url("mysql://h/d").is_err());
    }

    #[test]
    fn lost_races_are_run_again_and_endless_ones_are_contention() -> Result<(), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-kernel-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        let mut conn = db.get()?;
        conn.batch_execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")?;
        conn.batch_execute("INSERT INTO t VALUES (1)")?;
        let mut attempts = 0;
        // The first attempt collides with the row a "concurrent" writer inserted; the retry sees it.
        let found: Result<i32, DbError> = retry_lost_races(&mut conn, |c| {
            attempts += 1;
            if attempts == 1 {
                c.batch_execute("INSERT INTO t VALUES (1)")?;
            }
            Ok(attempts)
        });
        assert_eq!(found?, 2);
        let endless: Result<(), DbError> = retry_lost_races(&mut conn, |c| {
            Ok(c.batch_execute("INSERT INTO t VALUES (1)")?)
        });
        assert!(matches!(endless, Err(DbError::Contention(_))));
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    fn scratch_sqlite(connections: u32) -> Result<(std::path::PathBuf, Database), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-kernel-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), connections)?;
        Ok((dir, db))
    }

    #[tokio::test]
    async fn a_connection_not_free_within_the_acquire_bound_is_a_connection_error()
    -> Result<(), DbError> {
        let (dir, db) = scratch_sqlite(1)?;
        let db = db.with_acquire_timeout(Duration::from_millis(100));
        let (taken_tx, taken) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let db = db.clone();
            async move {
                db.run(move |_| {
                    let _ = taken_tx.send(());
                    let _ = held.recv();
                    Ok::<_, DbError>(())
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || taken.recv())
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
            .map_err(|e| DbError::Task(e.to_string()))?;
        let started = std::time::Instant::now();
        let waited = db.ping().await;
        let took = started.elapsed();
        assert!(
            matches!(&waited, Err(DbError::Connection(m)) if m.contains("SHOP_DB_ACQUIRE_TIMEOUT_MS")),
            "{waited:?}"
        );
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let _ = release.send(());
        holder.await.map_err(|e| DbError::Task(e.to_string()))??;
        db.ping().await?;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn work_whose_caller_stopped_waiting_still_commits_its_whole_transaction()
    -> Result<(), DbError> {
        use diesel::RunQueryDsl;
        let (dir, db) = scratch_sqlite(2)?;
        db.get()?
            .batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")?;
        let (began_tx, began) = std::sync::mpsc::channel::<()>();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        let work = db.run(move |c| {
            write_transaction(c, |c| {
                c.batch_execute("INSERT INTO t VALUES (1)")?;
                let _ = began_tx.send(());
                let _ = go.recv();
                c.batch_execute("INSERT INTO t VALUES (2)")
            })
            .map_err(DbError::Query)
        });
        // The caller gives up (a request cut off by its bound) while the transaction is half-way.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), work)
                .await
                .is_err()
        );
        began
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| DbError::Task(e.to_string()))?;
        let _ = go_tx.send(());
        let count = || {
            db.run(|c| {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "(SELECT COUNT(*) FROM t)",
                ))
                .get_result::<i64>(c)
                .map_err(DbError::Query)
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut rows = count().await?;
        while rows < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            rows = count().await?;
        }
        assert_eq!(rows, 2, "both rows of the transaction, not one");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn sqlite_write_transactions_commit_and_roll_back() -> Result<(), DbError> {
        let dir = std::env::temp_dir().join(format!("shop-kernel-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        let mut conn = db.get()?;
        conn.batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")?;
        write_transaction(&mut conn, |c| c.batch_execute("INSERT INTO t VALUES (1)"))?;
        let failed: Result<(), diesel::result::Error> = write_transaction(&mut conn, |c| {
            c.batch_execute("INSERT INTO t VALUES (2)")?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(failed.is_err());
        use diesel::RunQueryDsl;
        let count: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM t)",
        ))
        .get_result(&mut *conn)?;
        assert_eq!(count, 1);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn sqlite_is_built_with_the_query_planner_stability_guarantee() -> Result<(), DbError> {
        // .cargo/config.toml passes the flag to libsqlite3-sys's build; a build without it re-prepares every
        // statement with a bound LIMIT on every call, which no functional test would notice.
        let dir = std::env::temp_dir().join(format!("shop-kernel-{}", uuid::Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 1)?;
        let mut conn = db.get()?;
        use diesel::RunQueryDsl;
        let DbConn::Sqlite(c) = &mut *conn else {
            panic!("a sqlite:// URL gives a SQLite connection");
        };
        let used: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "sqlite_compileoption_used('ENABLE_QPSG')",
        ))
        .get_result(c)?;
        assert_eq!(used, 1, "SQLITE_ENABLE_QPSG is not compiled in");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn sqlite_timestamps_are_read_as_chrono_reads_them() {
        use chrono::NaiveDateTime;
        let chrono = |t: &str| {
            ["%F %T%.f", "%FT%T%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        };
        for text in [
            "2026-11-26 09:13:20",
            "2026-11-26 09:13:20.5",
            "2026-11-26 09:13:20.123456",
            "2026-11-26T09:13:20.123456789",
            "0001-01-01 00:00:00",
            "2024-02-29 23:59:59.999",
        ] {
            assert_eq!(sqlite_timestamp(text), chrono(text), "{text}");
            assert!(sqlite_timestamp(text).is_some(), "{text}");
        }
        // Not this form (or not a time at all): left to diesel's parser, which knows the others.
        for text in [
            "2026-11-26",
            "2026-11-26 09:13",
            "2026-02-30 09:13:20",
            "2026-11-26 24:00:00",
            "2026-11-26 09:13:20.",
            "2026-11-26 09:13:20.1234567890",
            "2026-11-26 09:13:20Z",
            "2026-11-26 09:13:20+01:00",
            "2026/11/26 09:13:20",
            "2026-11-26 09:1a:20",
            "2461000.5",
            "",
        ] {
            assert_eq!(sqlite_timestamp(text), None, "{text}");
        }
    }
}
