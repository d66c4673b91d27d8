//! The composition root: one `Arc<dyn XxxApi>` per module, local or remote, decided here and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;

use shop_catalog::CatalogApi;
use shop_identity::IdentityApi;
use shop_inventory::InventoryApi;
use shop_kernel::RequestContext;
use shop_kernel::auth::{KeySource, TokenRules, TokenVerifier};
use shop_kernel::db::{Database, DbError};
use shop_kernel::jwks::Jwks;
use shop_kernel::observe::{CallObserver, Transport};
use shop_kernel::rpc::{RpcClient, RpcConfig};

use crate::config::{Config, Module};

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration mistake.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Database(#[from] DbError),
    /// Anything else that stops startup, with the reason.
    #[error("{0}")]
    Other(String),
}

/// The modules this process can call, and what it needs to serve and watch them.
#[derive(Clone)]
pub struct Modules {
    /// Identity (always present: its keys verify every token).
    pub identity: Option<Arc<dyn IdentityApi>>,
    /// Catalog, when local or remote.
    pub catalog: Option<Arc<dyn CatalogApi>>,
    /// Inventory, when local or remote.
    pub inventory: Option<Arc<dyn InventoryApi>>,
    /// Verifies access tokens with identity's public keys.
    pub verifier: Arc<TokenVerifier>,
    /// The databases of the local modules (for readiness).
    pub databases: Vec<(Module, Database)>,
    /// The remote modules (for readiness).
    pub remotes: Vec<(Module, RpcClient)>,
    /// Background work of local modules (reservation expiry).
    #[cfg(feature = "inventory")]
    pub inventory_service: Option<Arc<shop_inventory::InventoryService>>,
}

impl Modules {
    /// Whether a module's implementation runs in this process.
    pub fn is_local(&self, module: Module) -> bool {
        self.databases.iter().any(|(m, _)| *m == module)
    }
}

/// Identity's keys, fetched through whichever identity implementation this process has.
struct IdentityKeys(Arc<dyn IdentityApi>);

#[async_trait::async_trait]
impl KeySource for IdentityKeys {
    async fn fetch_jwks(&self) -> Result<Jwks, String> {
        self.0
            .jwks(&RequestContext::system())
            .await
            .map_err(|e| e.to_string())
    }
}

/// Opens each distinct database once, runs each local module's migrations on its database.
fn open_databases(config: &Config) -> Result<BTreeMap<Module, Database>, StartupError> {
    let mut by_url: BTreeMap<String, Database> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for &module in &config.local_modules {
        let url = config.database_url_for(module).to_string();
        let db = match by_url.get(&url) {
            Some(db) => db.clone(),
            None => {
                let db = Database::connect(&url, config.db_pool_size).map_err(|e| {
                    StartupError::Other(format!(
                        "cannot open the database of {module} ({}): {e}",
                        shop_kernel::db::redact(&url)
                    ))
                })?;
                by_url.insert(url, db.clone());
                db
            }
        };
        crate::migrate::run(&db, module)?;
        out.insert(module, db);
    }
    Ok(out)
}

fn remote(config: &Config, url: &str) -> Result<RpcClient, StartupError> {
    let mut rpc = RpcConfig::new(url, config.outgoing_credential());
    rpc.attempt_timeout = config.remote_timeout;
    rpc.total_timeout = config.remote_timeout * 2;
    RpcClient::new(rpc).map_err(StartupError::Other)
}

/// Builds every module: local implementations on their databases, HTTP clients for the remote ones, each
/// wrapped so that every call is traced and reported to `observer`.
pub fn build(config: &Config, observer: Arc<dyn CallObserver>) -> Result<Modules, StartupError> {
    let databases = open_databases(config)?;
    let mut remotes = Vec::new();
    for (module, url) in config.remote_modules() {
        remotes.push((module, remote(config, url)?));
    }
    let remote_of = |m: Module| {
        remotes
            .iter()
            .find(|(r, _)| *r == m)
            .map(|(_, c)| c.clone())
    };

    #[allow(unused_mut)]
    let mut identity: Option<Arc<dyn IdentityApi>> =
        remote_of(Module::Identity).map(|c| Arc::new(shop_identity::IdentityClient::new(c)) as _);
    #[allow(unused_mut)]
    let mut catalog: Option<Arc<dyn CatalogApi>> =
        remote_of(Module::Catalog).map(|c| Arc::new(shop_catalog::CatalogClient::new(c)) as _);
    #[allow(unused_mut)]
    let mut inventory: Option<Arc<dyn InventoryApi>> = remote_of(Module::Inventory)
        .map(|c| Arc::new(shop_inventory::InventoryClient::new(c)) as _);
    #[cfg(feature = "inventory")]
    let mut inventory_service = None;

    for (&module, db) in &databases {
        match module {
            #[cfg(feature = "identity")]
            Module::Identity => identity = Some(Arc::new(local_identity(config, db.clone())?)),
            #[cfg(feature = "catalog")]
            Module::Catalog => {
                let config = shop_catalog::CatalogConfig {
                    currency: config.currency.clone(),
                };
                catalog = Some(Arc::new(shop_catalog::CatalogService::new(
                    db.clone(),
                    config,
                )));
            }
            #[cfg(feature = "inventory")]
            Module::Inventory => {
                let config = shop_inventory::InventoryConfig {
                    reservation_ttl: config.reservation_ttl,
                    ..Default::default()
                };
                let service = Arc::new(shop_inventory::InventoryService::new(db.clone(), config));
                inventory_service = Some(service.clone());
                inventory = Some(service);
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(StartupError::Other(format!(
                    "{other} is not compiled into this binary"
                )));
            }
        }
    }

    let transport = |m: Module| {
        if databases.contains_key(&m) {
            Transport::InProcess
        } else {
            Transport::Http
        }
    };
    let identity = identity.map(|api| {
        Arc::new(shop_identity::Observed::new(
            api,
            transport(Module::Identity),
            observer.clone(),
        )) as Arc<dyn IdentityApi>
    });
    let catalog = catalog.map(|api| {
        Arc::new(shop_catalog::Observed::new(
            api,
            transport(Module::Catalog),
            observer.clone(),
        )) as Arc<dyn CatalogApi>
    });
    let inventory = inventory.map(|api| {
        Arc::new(shop_inventory::Observed::new(
            api,
            transport(Module::Inventory),
            observer.clone(),
        )) as Arc<dyn InventoryApi>
    });

    let identity_for_keys = identity.clone().ok_or_else(|| {
        StartupError::Other(format!(
            "identity is unreachable: set {}",
            Module::Identity.url_var()
        ))
    })?;
    let verifier = Arc::new(TokenVerifier::new(
        Arc::new(IdentityKeys(identity_for_keys)),
        TokenRules {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        },
    ));
    Ok(Modules {
        identity,
        catalog,
        inventory,
        verifier,
        databases: databases.into_iter().collect(),
        remotes,
        #[cfg(feature = "inventory")]
        inventory_service,
    })
}

#[cfg(feature = "identity")]
fn local_identity(
    config: &Config,
    db: Database,
) -> Result<shop_identity::IdentityService, StartupError> {
    let key_path = config.data_dir.join("jwt-signing-key");
    let signing_key = shop_identity::SigningKey::load_or_create(
        config.jwt_signing_key.as_ref().map(|k| k.expose()),
        &key_path,
    )
    .map_err(|e| StartupError::Other(format!("token signing key: {e}")))?;
    let (memory_kib, iterations, parallelism) = config.argon2;
    let (per_account, per_client, window) = config.login_throttle;
    shop_identity::IdentityService::new(
        db,
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
    .map_err(StartupError::Other)
}

/// Makes sure the configured admin exists (idempotent). Only the process where identity runs does it:
/// `ensure_admin` is the system's own operation and never crosses HTTP.
pub async fn ensure_admin(config: &Config, modules: &Modules) -> Result<(), StartupError> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        if config.admin_email.is_some() != config.admin_password.is_some() {
            return Err(StartupError::Other(
                "set both SHOP_ADMIN_EMAIL and SHOP_ADMIN_PASSWORD, or neither".into(),
            ));
        }
        return Ok(());
    };
    if !modules.is_local(Module::Identity) {
        tracing::info!("identity runs elsewhere: the admin account is ensured there");
        return Ok(());
    }
    let identity = modules
        .identity
        .as_ref()
        .ok_or_else(|| StartupError::Other("identity is unreachable".into()))?;
    let admin = identity
        .ensure_admin(
            &RequestContext::system(),
            email.clone(),
            password.expose().to_string(),
        )
        .await
        .map_err(|e| match e {
            shop_identity::IdentityError::AdminPasswordMismatch => StartupError::Other(format!(
                "an account {email} exists and SHOP_ADMIN_PASSWORD does not match its password, so it is \
                 not made admin (someone may have registered the admin email first): choose another \
                 SHOP_ADMIN_EMAIL, or remove or fix that account"
            )),
            other => StartupError::Other(format!("cannot ensure the admin {email}: {other}")),
        })?;
    tracing::info!(user.id = %admin.id, "admin account ensured");
    Ok(())
}
