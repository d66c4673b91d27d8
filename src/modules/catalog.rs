//! The catalog module's entry: products and prices.

use shop_catalog::{CatalogApi, CatalogClient, Observed};

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(CatalogApi, CatalogClient, Observed);

/// The catalog.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_catalog::MODULE,
    compiled_in: cfg!(feature = "catalog"),
    tables: shop_catalog::TABLES,
    operations: shop_catalog::OPERATIONS,
    migrations,
    public_routes: shop_catalog::http::server::public_routes,
    internal_routes: shop_catalog::http::server::internal_routes,
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
    "catalog",
    "migrations/catalog/sqlite",
    "migrations/catalog/postgres"
);

#[cfg(feature = "catalog")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    let config = shop_catalog::CatalogConfig {
        currency: local.config.currency.clone(),
    };
    let service = shop_catalog::CatalogService::new(local.db.clone(), config);
    Ok(super::api::<dyn CatalogApi>(std::sync::Arc::new(service)))
}

#[cfg(not(feature = "catalog"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "catalog is not compiled into this binary".into(),
    ))
}
