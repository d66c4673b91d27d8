//! The identity module's entry: users, passwords and the keys that verify every access token.

use shop_identity::{IdentityApi, IdentityClient, Observed};

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(IdentityApi, IdentityClient, Observed);

/// Identity.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_identity::MODULE,
    compiled_in: cfg!(feature = "identity"),
    tables: shop_identity::TABLES,
    operations: shop_identity::OPERATIONS,
    migrations,
    public_routes: shop_identity::http::server::public_routes,
    internal_routes: shop_identity::http::server::internal_routes,
    local,
    client,
    observed,
    app_data,
    events: shop_identity::EVENTS,
    outbox_table: Some(shop_identity::OUTBOX_TABLE),
    subscribes_to: &[],
    event_handler: super::no_event_handler,
};

crate::module_migrations!(
    "identity",
    "migrations/identity/sqlite",
    "migrations/identity/postgres"
);

#[cfg(feature = "identity")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    let config = local.config;
    let key_path = config.data_dir.join("jwt-signing-key");
    let signing_key = shop_identity::SigningKey::load_or_create(
        config.jwt_signing_key.as_ref().map(|k| k.expose()),
        &key_path,
    )
    .map_err(|e| StartupError::Other(format!("token signing key: {e}")))?;
    let (memory_kib, iterations, parallelism) = config.argon2;
    let (per_account, per_client, window) = config.login_throttle;
    let service = shop_identity::IdentityService::new(
        local.db.clone(),
        shop_identity::IdentityConfig {
            signing_key,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            token_ttl: config.access_token_ttl,
            password_cost: shop_identity::PasswordCost {
                memory_kib,
                iterations,
                parallelism,
            },
            throttle: shop_identity::ThrottleConfig {
                per_account,
                per_client,
                window,
            },
            rate_limit_per_client: config.rate_limit_per_client,
            hash_threads: config.password_hash_threads,
            hash_wait: config.password_hash_wait,
        },
    )
    .map_err(StartupError::Other)?;
    Ok(super::api::<dyn IdentityApi>(std::sync::Arc::new(service)))
}

#[cfg(not(feature = "identity"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "identity is not compiled into this binary".into(),
    ))
}
