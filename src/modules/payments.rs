//! The payments module's entry: the store-credit wallet, which asks identity whether credited users exist,
//! and the task that forgets its old idempotency keys.

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
    let service = std::sync::Arc::new(shop_payments::PaymentsService::new(
        local.db.clone(),
        config,
        identity,
    ));
    if let Some(tasks) = local.tasks {
        let purger = service.clone();
        tasks.every(
            "payments.idempotency_purge",
            std::time::Duration::from_secs(600),
            move || {
                let purger = purger.clone();
                async move {
                    match purger.purge_idempotency_keys().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "old idempotency keys forgotten"),
                        Err(e) => {
                            tracing::warn!(error = %e, "purging payments' idempotency keys failed")
                        }
                    }
                }
            },
        );
    }
    Ok(super::api::<dyn PaymentsApi>(service))
}

#[cfg(not(feature = "payments"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "payments is not compiled into this binary".into(),
    ))
}
