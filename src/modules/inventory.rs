//! The inventory module's entry: stock and reservations, with its reservation-expiry task.

use shop_inventory::{InventoryApi, InventoryClient, Observed};

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(InventoryApi, InventoryClient, Observed);

/// Inventory.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_inventory::MODULE,
    compiled_in: cfg!(feature = "inventory"),
    tables: shop_inventory::TABLES,
    operations: shop_inventory::OPERATIONS,
    migrations,
    public_routes: shop_inventory::http::server::public_routes,
    internal_routes: shop_inventory::http::server::internal_routes,
    local,
    client,
    observed,
    app_data,
    events: &[],
    outbox_table: None,
    subscribes_to: &[],
    event_handler: super::no_event_handler,
};

crate::module_migrations!(
    "inventory",
    "migrations/inventory/sqlite",
    "migrations/inventory/postgres"
);

#[cfg(feature = "inventory")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    use std::sync::Arc;
    use std::time::Duration;

    let ttl = local.config.reservation_ttl;
    let config = shop_inventory::InventoryConfig {
        reservation_ttl: ttl,
        ..Default::default()
    };
    let service = Arc::new(shop_inventory::InventoryService::new(
        local.db.clone(),
        config,
    ));
    if let Some(tasks) = local.tasks {
        let sweeper = service.clone();
        let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        tasks.every("inventory.reservation_expiry", every, move || {
            let sweeper = sweeper.clone();
            async move {
                match sweeper.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired reservations released"),
                    Err(e) => tracing::warn!(error = %e, "reservation sweep failed"),
                }
            }
        });
    }
    Ok(super::api::<dyn InventoryApi>(service))
}

#[cfg(not(feature = "inventory"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "inventory is not compiled into this binary".into(),
    ))
}
