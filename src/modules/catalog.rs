//! The catalog module's entry: products and prices.

use shop_catalog::{CatalogApi, CatalogClient, Observed};

use diesel_migrations::EmbeddedMigrations;
use shop_kernel::db::Backend;

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

#[cfg(feature = "catalog")]
fn migrations(backend: Backend) -> Option<EmbeddedMigrations> {
    const SQLITE: EmbeddedMigrations =
        diesel_migrations::embed_migrations!("migrations/catalog/sqlite");
    const POSTGRES: EmbeddedMigrations =
        diesel_migrations::embed_migrations!("migrations/catalog/postgres");
    Some(match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    })
}

#[cfg(not(feature = "catalog"))]
fn migrations(_: Backend) -> Option<EmbeddedMigrations> {
    None
}

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
