//! Plans do not depend on bound values here: PostgreSQL plans each cached statement once, generically
//! (`plan_cache_mode = force_generic_plan`), and SQLite is built with its planner stability guarantee. So a
//! partial index serves a query only when the query writes the index's condition as a literal, as the
//! inventory's expiry sweep does (`status = 'held'`, the condition of `inventory_reservations_held_expiry`).
//! This shows both forms on both backends; the sweep's own statement is planned by a unit test in
//! `shop_inventory::store`. The outbox's statements, as it sends them, are planned among a million delivered
//! events: each one reads an index, none the whole table.

mod common;

use common::*;
use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use shop_kernel::db::DbConn;

#[derive(diesel::QueryableByName)]
struct SqlitePlan {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(diesel::QueryableByName)]
struct PgPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

const SWEEP: &str = "SELECT order_id FROM inventory_reservations WHERE {status} \
                     AND expires_at < '2026-01-01 00:00:00' ORDER BY expires_at LIMIT 100";

/// The plan of the sweep's statement, its status written as a literal or (`bound`) as a parameter.
fn sweep_plan(conn: &mut DbConn, bound: bool) -> String {
    let lines = match conn {
        DbConn::Sqlite(c) => {
            let status = if bound {
                "status = ?"
            } else {
                "status = 'held'"
            };
            let sql = format!("EXPLAIN QUERY PLAN {}", SWEEP.replace("{status}", status));
            let plan = if bound {
                diesel::sql_query(sql)
                    .bind::<Text, _>("held")
                    .load::<SqlitePlan>(c)
            } else {
                diesel::sql_query(sql).load::<SqlitePlan>(c)
            };
            plan.unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|p| p.detail)
                .collect::<Vec<_>>()
        }
        DbConn::Pg(c) => {
            // A prepared statement, as diesel caches one: this connection plans it generically. Index scans
            // only where an index can serve at all (a sequential scan of a small table says nothing).
            let (prepare, execute) = if bound {
                ("PREPARE sweep(text) AS", "EXPLAIN EXECUTE sweep('held')")
            } else {
                ("PREPARE sweep AS", "EXPLAIN EXECUTE sweep")
            };
            let status = if bound {
                "status = $1"
            } else {
                "status = 'held'"
            };
            c.batch_execute(&format!(
                "DEALLOCATE ALL; SET enable_seqscan = off; {prepare} {}",
                SWEEP.replace("{status}", status)
            ))
            .unwrap_or_else(|e| panic!("{e}"));
            diesel::sql_query(execute)
                .load::<PgPlan>(c)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|p| p.line)
                .collect()
        }
    };
    lines.join("\n")
}

#[tokio::test]
async fn the_expiry_sweep_is_served_by_its_partial_index() {
    let app = spawn_app().await;
    let url = app.db.as_ref().map(|d| d.url.clone()).unwrap_or_default();
    let db = shop_kernel::db::Database::connect(&url, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = db.get().unwrap_or_else(|e| panic!("{e}"));
    let literal = sweep_plan(&mut conn, false);
    assert!(
        literal.contains("inventory_reservations_held_expiry"),
        "the literal condition uses the partial index:\n{literal}"
    );
    // Why the sweep writes it as a literal: a bound status is not known to match the index's condition.
    let bound = sweep_plan(&mut conn, true);
    assert!(
        !bound.contains("inventory_reservations_held_expiry"),
        "a bound status cannot use the partial index:\n{bound}"
    );
}

/// Delivered events in the outbox of the plan test: what a busy shop keeps within a week's retention.
const DELIVERED: i64 = 1_000_000;

/// Fills `table` with [`DELIVERED`] delivered events, 100 failing ones and 10 parked ones, in one statement
/// each (PostgreSQL then gathers statistics, as autovacuum would).
fn fill_outbox(conn: &mut DbConn, table: &str, event_type: &str) {
    // Delivered yesterday, 20 a second (SQLite: within yesterday's date; a million take 14 hours).
    let now = shop_kernel::db::now();
    let day = (now - chrono::Duration::days(1)).format("%Y-%m-%d");
    let soon = (now + chrono::Duration::minutes(1)).format("%Y-%m-%d %H:%M:%S");
    let columns = "id, event_type, version, payload, occurred_at, attempts, refusals, next_attempt_at, \
                   last_error, delivered_at";
    let sql = match conn {
        // Unlogged while filling: the rows are thrown away with the database, and the plans are the same.
        DbConn::Pg(_) => format!(
            "ALTER TABLE {table} SET UNLOGGED; \
             INSERT INTO {table} ({columns}) \
             SELECT '00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'), '{event_type}', 1, '{{}}', \
                    (now() AT TIME ZONE 'UTC') - interval '1 day' + n * interval '50 milliseconds', \
                    CASE WHEN n <= 110 THEN 5 ELSE 0 END, CASE WHEN n <= 10 THEN 12 ELSE 0 END, \
                    CASE WHEN n <= 10 THEN NULL WHEN n <= 110 THEN (now() AT TIME ZONE 'UTC') + interval '1 minute' END, \
                    CASE WHEN n <= 110 THEN 'down' END, \
                    CASE WHEN n > 110 THEN (now() AT TIME ZONE 'UTC') - interval '1 day' + n * interval '50 milliseconds' END \
             FROM generate_series(1, {DELIVERED} + 110) AS n; \
             ANALYZE {table}"
        ),
        // One timestamp per row, made from a number: SQLite's date functions are slow in an unoptimised
        // build, and SQLite keeps timestamps as text anyway.
        DbConn::Sqlite(_) => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {DELIVERED} + 110) \
             INSERT INTO {table} ({columns}) \
             SELECT printf('00000000-0000-7000-8000-%012x', i), '{event_type}', 1, '{{}}', at, \
                    CASE WHEN i <= 110 THEN 5 ELSE 0 END, CASE WHEN i <= 10 THEN 12 ELSE 0 END, \
                    CASE WHEN i <= 10 THEN NULL WHEN i <= 110 THEN '{soon}' END, \
                    CASE WHEN i <= 110 THEN 'down' END, \
                    CASE WHEN i > 110 THEN at END \
             FROM (SELECT i, printf('{day} %02d:%02d:%02d.%06d', i / 72000 % 24, i / 1200 % 60, \
                                    i / 20 % 60, i % 20 * 50000) AS at FROM n)"
        ),
    };
    conn.batch_execute(&sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The plan of `sql` (a statement as the outbox sends it) with these arguments: on PostgreSQL of the
/// prepared statement, generic as every statement of this connection is planned.
fn plan_of(conn: &mut DbConn, sql: &str, args: &[&str]) -> String {
    let lines = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load::<SqlitePlan>(c)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_iter()
            .map(|p| p.detail)
            .collect::<Vec<_>>(),
        DbConn::Pg(c) => {
            c.batch_execute(&format!(
                "DEALLOCATE ALL; PREPARE outbox_statement AS {sql}"
            ))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
            let execute = if args.is_empty() {
                "EXPLAIN EXECUTE outbox_statement".to_string()
            } else {
                format!("EXPLAIN EXECUTE outbox_statement({})", args.join(", "))
            };
            diesel::sql_query(execute)
                .load::<PgPlan>(c)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .into_iter()
                .map(|p| p.line)
                .collect()
        }
    };
    lines.join("\n")
}

/// Every statement the relay, the gauges, the purge and the operators' endpoints send to `module`'s outbox,
/// planned among a million delivered events: each reads an index, none the whole table.
fn outbox_statements_use_their_indexes(module: &str) {
    use shop_kernel::events::outbox::Outbox;
    use std::sync::{Arc, Mutex};

    let started = std::time::Instant::now();
    let def = shop::modules::find(module).unwrap_or_else(|| panic!("no module {module}"));
    let (Some(table), Some(module), Some(event)) = (
        def.outbox_table,
        shop::config::Module::parse(def.name),
        def.events.first(),
    ) else {
        panic!("{module} has no outbox");
    };
    let db = TestDb::new();
    let database = shop_kernel::db::Database::connect(&db.url, 1).unwrap_or_else(|e| panic!("{e}"));
    shop::migrate::run(&database, module).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = database.get().unwrap_or_else(|e| panic!("{e}"));
    fill_outbox(&mut conn, table, event.name);
    eprintln!("{table}: filled after {:?}", started.elapsed());

    // Every statement the outbox sends, captured as sent.
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&sent);
    let capture = move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event
            && let Ok(mut log) = log.lock()
        {
            log.push(query.to_string());
        }
    };
    match &mut *conn {
        DbConn::Pg(c) => diesel::Connection::set_instrumentation(c, capture),
        DbConn::Sqlite(c) => diesel::Connection::set_instrumentation(c, capture),
    }
    let last_sent = || {
        sent.lock()
            .ok()
            .and_then(|log| log.last().cloned())
            .and_then(|q| q.split(" -- binds").next().map(str::to_owned))
            .unwrap_or_else(|| panic!("nothing sent"))
    };
    let outbox = Outbox::new(table);
    let now = shop_kernel::db::now();
    let week_ago = now - chrono::Duration::days(7);
    let backlog = outbox.backlog(&mut conn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backlog.undelivered, 110);
    let backlog = last_sent();
    let failing = outbox
        .failing(&mut conn, None, 21)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failing.len(), 21);
    let failing = last_sent();
    let resubmitted = outbox
        .resubmit_failed(&mut conn, Some(event.name), true, now)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resubmitted, 10, "the parked ones");
    let resubmit = last_sent();
    // The first minute or so of yesterday's events are past a retention that ends there: more than one
    // batch of the purge.
    let cutoff = match &*conn {
        DbConn::Pg(_) => now - chrono::Duration::days(1) + chrono::Duration::seconds(75),
        DbConn::Sqlite(_) => (now - chrono::Duration::days(1))
            .date()
            .and_hms_opt(0, 1, 15)
            .unwrap_or(week_ago),
    };
    let old = count(
        &db.url,
        &format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE delivered_at IS NOT NULL AND delivered_at < '{}'",
            cutoff.format("%Y-%m-%d %H:%M:%S%.f")
        ),
    );
    assert!(old > 1000, "{old}");
    let purged = outbox
        .purge(&mut conn, cutoff)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i64::try_from(purged).ok(), Some(old));
    let purge = last_sent();
    let claimed = outbox
        .claim(&mut conn, now, std::time::Duration::from_secs(30), 100)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claimed.len(), 10, "the resubmitted ones");
    let claim = last_sent();

    let (at, limit) = (week_ago.to_string(), "21");
    let undelivered = format!("{table}_undelivered");
    let delivered = format!("{table}_delivered");
    let due = format!("{table}_due");
    for (what, sql, args, index) in [
        ("backlog gauge", &backlog, vec![], &undelivered),
        ("failing list", &failing, vec!["3", "", limit], &undelivered),
        (
            "bulk resubmit",
            &resubmit,
            vec![at.as_str(), event.name],
            &undelivered,
        ),
        ("purge", &purge, vec![at.as_str()], &delivered),
        ("claim", &claim, vec![at.as_str(), at.as_str()], &due),
    ] {
        let plan = plan_of(&mut conn, sql, &args);
        let full_scan =
            plan.contains("Seq Scan") || plan.lines().any(|l| l.trim() == format!("SCAN {table}"));
        assert!(
            plan.contains(index.as_str()) && !full_scan,
            "{table}, {what}: {sql}\n{plan}"
        );
    }
    eprintln!("{table}: planned after {:?}", started.elapsed());
}

#[test]
fn every_outbox_is_planned_below() {
    let publishers: Vec<&str> = shop::modules::ALL
        .iter()
        .filter(|d| d.outbox_table.is_some())
        .map(|d| d.name)
        .collect();
    assert_eq!(publishers, ["identity", "ordering"], "add a test below");
}

// One test per outbox, so that the two fill their databases at once.
#[test]
fn identitys_outbox_statements_use_its_indexes_among_a_million_delivered_events() {
    outbox_statements_use_their_indexes("identity");
}

#[test]
fn orderings_outbox_statements_use_its_indexes_among_a_million_delivered_events() {
    outbox_statements_use_their_indexes("ordering");
}
