//! The composition root: one `Arc<dyn XxxApi>` per module, local or remote, decided here and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;

use shop_identity::IdentityApi;
use shop_kernel::RequestContext;
use shop_kernel::auth::{KeySource, TokenRules, TokenVerifier};
use shop_kernel::db::{Database, DbError};
use shop_kernel::jwks::Jwks;
use shop_kernel::observe::{CallObserver, Transport};
use shop_kernel::rpc::{RpcClient, RpcConfig};
use shop_kernel::tasks::BackgroundTasks;

use crate::config::{Config, Module};
use crate::modules::{Apis, Local};

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
    /// Every module this process can call, local or remote, behind its access rules, span and metrics.
    pub apis: Apis,
    /// Verifies access tokens with identity's public keys.
    pub verifier: Arc<TokenVerifier>,
    /// The databases of the local modules (for readiness).
    pub databases: Vec<(Module, Database)>,
    /// The remote modules (for readiness).
    pub remotes: Vec<(Module, RpcClient)>,
}

impl Modules {
    /// Whether a module's implementation runs in this process.
    pub fn is_local(&self, module: Module) -> bool {
        self.databases.iter().any(|(m, _)| *m == module)
    }

    /// The typed API of a module (`modules.get::<dyn InventoryApi>()`).
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.apis.get::<T>()
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
                let db = Database::connect(&url, config.db_pool_size)
                    .map_err(|e| {
                        StartupError::Other(format!(
                            "cannot open the database of {module} ({}): {e}",
                            shop_kernel::db::redact(&url)
                        ))
                    })?
                    .with_acquire_timeout(config.db_acquire_timeout);
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

/// Builds every module of the table, in its order: local implementations on their databases (each may use
/// the modules built before it), HTTP clients for the remote ones, each wrapped so that every call is
/// checked against the contract's access rules, traced and reported to `observer`. Local modules register
/// their background work in `tasks` (none for one-shot CLI commands).
pub fn build(
    config: &Config,
    observer: Arc<dyn CallObserver>,
    tasks: Option<&BackgroundTasks>,
) -> Result<Modules, StartupError> {
    let databases = open_databases(config)?;
    let mut remotes = Vec::new();
    for (module, url) in config.remote_modules() {
        remotes.push((module, remote(config, url)?));
    }
    let mut apis = Apis::default();
    for def in crate::modules::ALL {
        let Some(module) = Module::parse(def.name) else {
            continue;
        };
        let (api, transport) = if let Some(db) = databases.get(&module) {
            let local = Local {
                config,
                db: db.clone(),
                apis: &apis,
                tasks,
            };
            ((def.local)(&local)?, Transport::InProcess)
        } else if let Some((_, client)) = remotes.iter().find(|(m, _)| *m == module) {
            ((def.client)(client.clone()), Transport::Http)
        } else {
            continue;
        };
        let observed = (def.observed)(&api, transport, observer.clone()).ok_or_else(|| {
            StartupError::Other(format!("{module}: its entry built an API of another type"))
        })?;
        apis.insert(def.name, observed);
    }

    let identity = apis.get::<dyn IdentityApi>().ok_or_else(|| {
        StartupError::Other(format!(
            "identity is unreachable: set {}",
            Module::IDENTITY.url_var()
        ))
    })?;
    let verifier = Arc::new(TokenVerifier::new(
        Arc::new(IdentityKeys(identity)),
        TokenRules {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        },
    ));
    Ok(Modules {
        apis,
        verifier,
        databases: databases.into_iter().collect(),
        remotes,
    })
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
    if !modules.is_local(Module::IDENTITY) {
        tracing::info!("identity runs elsewhere: the admin account is ensured there");
        return Ok(());
    }
    let identity = modules
        .get::<dyn IdentityApi>()
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
