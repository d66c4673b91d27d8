//! The payments module's entry: the store-credit wallet, which asks identity whether credited users exist.

use shop_payments::{Observed, PaymentsApi, PaymentsClient};

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(PaymentsApi, PaymentsClient, Observed);

/// The payments.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_payments::MODULE,
    compiled_in: cfg!(feature = "payments"),
    tables: shop_payments::TABLES,
    operations: shop_payments::OPERATIONS,
    migrations,
    public_routes: shop_payments::http::server::public_routes,
    internal_routes: shop_payments::http::server::internal_routes,
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
    "payments",
    "migrations/payments/sqlite",
    "migrations/payments/postgres"
);

#[cfg(feature = "payments")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    let config = shop_payments::PaymentsConfig {
        currency: local.config.currency.clone(),
    };
    let identity = local
        .apis
        .get::<dyn shop_identity::IdentityApi>()
        .ok_or_else(|| {
            StartupError::Other("payments needs identity, which is unreachable".into())
        })?;
    let service = shop_payments::PaymentsService::new(local.db.clone(), config, identity);
    Ok(super::api::<dyn PaymentsApi>(std::sync::Arc::new(service)))
}

#[cfg(not(feature = "payments"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "payments is not compiled into this binary".into(),
    ))
}
