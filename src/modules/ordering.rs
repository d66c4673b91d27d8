//! The ordering module's entry: orders and the checkout saga, which use catalog, inventory and payments,
//! and the recovery task that finishes what a stopped saga left.

use shop_ordering::{Observed, OrderingApi, OrderingClient};

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(OrderingApi, OrderingClient, Observed);

/// Ordering.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_ordering::MODULE,
    compiled_in: cfg!(feature = "ordering"),
    tables: shop_ordering::TABLES,
    operations: shop_ordering::OPERATIONS,
    migrations,
    public_routes: shop_ordering::http::server::public_routes,
    internal_routes: shop_ordering::http::server::internal_routes,
    local,
    client,
    observed,
    app_data,
    events: shop_ordering::EVENTS,
    outbox_table: Some(shop_ordering::OUTBOX_TABLE),
    subscribes_to: &[],
    event_handler: super::no_event_handler,
};

crate::module_migrations!(
    "ordering",
    "migrations/ordering/sqlite",
    "migrations/ordering/postgres"
);

#[cfg(feature = "ordering")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    use std::sync::Arc;

    let needs = |module: &str| {
        StartupError::Other(format!("ordering needs {module}, which is unreachable"))
    };
    let catalog = local
        .apis
        .get::<dyn shop_catalog::CatalogApi>()
        .ok_or_else(|| needs("catalog"))?;
    let inventory = local
        .apis
        .get::<dyn shop_inventory::InventoryApi>()
        .ok_or_else(|| needs("inventory"))?;
    let payments = local
        .apis
        .get::<dyn shop_payments::PaymentsApi>()
        .ok_or_else(|| needs("payments"))?;
    let config = shop_ordering::OrderingConfig {
        lease: local.config.order_saga_lease,
        give_up_after: local.config.order_give_up,
        retry_base: local.config.order_retry_base,
        crash_after: local.config.fault_crash_after.clone(),
        ..shop_ordering::OrderingConfig::new(local.config.currency.clone())
    };
    let service = Arc::new(shop_ordering::OrderingService::new(
        local.db.clone(),
        config,
        catalog,
        inventory,
        payments,
    ));
    if let Some(tasks) = local.tasks {
        let recovery = service.clone();
        tasks.every(
            "ordering.saga_recovery",
            local.config.order_recovery_interval,
            move || {
                let recovery = recovery.clone();
                async move {
                    match recovery.recover().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(orders = n, "unfinished orders taken over"),
                        Err(e) => tracing::warn!(error = %e, "order recovery failed"),
                    }
                }
            },
        );
    }
    Ok(super::api::<dyn OrderingApi>(service))
}

#[cfg(not(feature = "ordering"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "ordering is not compiled into this binary".into(),
    ))
}
