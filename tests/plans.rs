//! Plans do not depend on bound values here: PostgreSQL plans each cached statement once, generically
//! (`plan_cache_mode = force_generic_plan`), and SQLite is built with its planner stability guarantee. So a
//! partial index serves a query only when the query writes the index's condition as a literal, as the
//! inventory's expiry sweep does (`status = 'held'`, the condition of `inventory_reservations_held_expiry`).
//! This shows both forms on both backends; the sweep's own statement is planned by a unit test in
//! `shop_inventory::store`.

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
