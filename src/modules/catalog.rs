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
    let service = std::sync::Arc::new(shop_catalog::CatalogService::new(local.db.clone(), config));
    if let Some(tasks) = local.tasks {
        // Products stored before word search or under an older cutting rule (or written into the table by
        // a bulk import), are indexed in batches: at start (the first tick runs at once), then every few
        // seconds, a tick that finds nothing through a partial index.
        let indexer = service.clone();
        tasks.every(
            "catalog.search_words",
            std::time::Duration::from_secs(5),
            move || {
                let indexer = indexer.clone();
                async move {
                    loop {
                        match indexer.index_stale_words(500).await {
                            Ok(0) => break,
                            Ok(n) => tracing::info!(indexed = n, "products indexed for search"),
                            Err(e) => {
                                tracing::warn!(error = %e, "indexing products for search failed");
                                break;
                            }
                        }
                    }
                }
            },
        );
    }
    Ok(super::api::<dyn CatalogApi>(service))
}

#[cfg(not(feature = "catalog"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "catalog is not compiled into this binary".into(),
    ))
}
