//! The module table: one entry per bounded context, and everything the composition root needs to know about
//! it — name, tables, migrations, public and internal routes, OpenAPI, how to build it locally from the modules
//! it uses, and its HTTP client. Configuration, startup, migrations, routing, the OpenAPI documents and the
//! architecture test all iterate this table; adding a module is one file here and one line in [`ALL`].

use std::any::Any;
use std::sync::Arc;

use actix_web::web;
use diesel_migrations::EmbeddedMigrations;
use shop_kernel::db::{Backend, Database};
use shop_kernel::events::{EventHandler, EventInfo};
use shop_kernel::observe::{CallObserver, Transport};
use shop_kernel::rpc::{Operation, RpcClient};
use shop_kernel::tasks::BackgroundTasks;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::app::StartupError;
use crate::config::Config;

pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod ordering;
pub mod payments;

/// Every module, in dependency order: a module may use only modules listed before it.
pub const ALL: &[&ModuleDef] = &[
    &identity::DEF,
    &catalog::DEF,
    &inventory::DEF,
    &payments::DEF,
    &ordering::DEF,
    &notifications::DEF,
];

/// A module's API as the table holds it: an `Arc<dyn XxxApi>` behind `Any`, so that every module can be
/// handled alike; [`Apis::get`] gives the typed API back.
pub type Api = Arc<dyn Any + Send + Sync>;

/// What the composition root knows about one module.
pub struct ModuleDef {
    /// `SHOP_MODULES` entry, cargo feature, `/internal/<name>`, `SHOP_<NAME>_URL`, table prefix.
    pub name: &'static str,
    /// Whether this binary has the implementation (the cargo feature of the same name).
    pub compiled_in: bool,
    /// The tables the module owns (its migrations create exactly these).
    pub tables: &'static [&'static str],
    /// The operations of its contract, served over `/internal`.
    pub operations: &'static [Operation],
    /// Its migrations for a backend, embedded from `migrations/<name>/{sqlite,postgres}` (`None` when not
    /// compiled in).
    pub migrations: fn(Backend) -> Option<EmbeddedMigrations>,
    /// Its public routes; mounted over the HTTP client when the module runs elsewhere.
    pub public_routes: fn(&mut ServiceConfig),
    /// Its `/internal` routes (only where it runs).
    pub internal_routes: fn(&mut web::ServiceConfig),
    /// Builds the local implementation.
    pub local: fn(&Local<'_>) -> Result<Api, StartupError>,
    /// The same contract over HTTP.
    pub client: fn(RpcClient) -> Api,
    /// Wraps an implementation (local or client) in the contract's access rules, span and metrics.
    pub observed: fn(&Api, Transport, Arc<dyn CallObserver>) -> Option<Api>,
    /// Puts the typed API (`web::Data<dyn XxxApi>`) into the app for the module's handlers.
    pub app_data: fn(&Api, &mut web::ServiceConfig),
    /// The events it publishes (its AsyncAPI document).
    pub events: &'static [EventInfo],
    /// Its outbox table, when it publishes events; the process where it runs relays it.
    pub outbox_table: Option<&'static str>,
    /// The event types it subscribes to (its contract's list): a process running a publisher of one must
    /// reach it (configuration checks it, delivery never skips it), and the AsyncAPI documents name it.
    pub subscribes_to: &'static [&'static str],
    /// Builds its event handler from its API (local or client) when it subscribes to events.
    pub event_handler: fn(&Api) -> Option<Arc<dyn EventHandler>>,
}

/// The `event_handler` of a module that subscribes to nothing.
pub fn no_event_handler(_: &Api) -> Option<Arc<dyn EventHandler>> {
    None
}

/// What a local implementation is built from.
pub struct Local<'a> {
    /// The process configuration.
    pub config: &'a Config,
    /// The module's database (migrated).
    pub db: Database,
    /// The modules built before it (the ones it may use).
    pub apis: &'a Apis,
    /// Where it registers background work; `None` for one-shot CLI commands.
    pub tasks: Option<&'a BackgroundTasks>,
}

/// The modules a process can call, by name.
#[derive(Clone, Default)]
pub struct Apis(Vec<(&'static str, Api)>);

impl Apis {
    /// Adds (or replaces) a module's API.
    pub fn insert(&mut self, name: &'static str, api: Api) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, api));
    }

    /// The API stored under `name`, untyped.
    pub fn by_name(&self, name: &str) -> Option<&Api> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, api)| api)
    }

    /// The typed API of the module implementing `T` (e.g. `apis.get::<dyn InventoryApi>()`).
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .iter()
            .find_map(|(_, api)| api.downcast_ref::<Arc<T>>().cloned())
    }

    /// Names of the modules present.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|(n, _)| *n)
    }
}

/// Boxes a typed API for the table.
pub fn api<T: ?Sized + Send + Sync + 'static>(typed: Arc<T>) -> Api {
    Arc::new(typed)
}

/// The typed API inside a table entry.
pub fn typed<T: ?Sized + Send + Sync + 'static>(api: &Api) -> Option<Arc<T>> {
    api.downcast_ref::<Arc<T>>().cloned()
}

/// A module's entry by name.
pub fn find(name: &str) -> Option<&'static ModuleDef> {
    ALL.iter().copied().find(|m| m.name == name)
}

/// A module's `migrations` function of [`ModuleDef`]: its embedded SQLite and PostgreSQL histories when its
/// cargo feature is on, `None` otherwise (`embed_migrations!` wants literal paths, hence a macro).
#[macro_export]
macro_rules! module_migrations {
    ($feature:literal, $sqlite:literal, $postgres:literal) => {
        #[cfg(feature = $feature)]
        fn migrations(
            backend: shop_kernel::db::Backend,
        ) -> Option<diesel_migrations::EmbeddedMigrations> {
            const SQLITE: diesel_migrations::EmbeddedMigrations =
                diesel_migrations::embed_migrations!($sqlite);
            const POSTGRES: diesel_migrations::EmbeddedMigrations =
                diesel_migrations::embed_migrations!($postgres);
            Some(match backend {
                shop_kernel::db::Backend::Sqlite => SQLITE,
                shop_kernel::db::Backend::Postgres => POSTGRES,
            })
        }

        #[cfg(not(feature = $feature))]
        fn migrations(
            _: shop_kernel::db::Backend,
        ) -> Option<diesel_migrations::EmbeddedMigrations> {
            None
        }
    };
}

/// The per-module functions of [`ModuleDef`] that only differ by the contract's types.
#[macro_export]
macro_rules! module_glue {
    ($api:path, $client:path, $observed:path) => {
        fn client(rpc: shop_kernel::rpc::RpcClient) -> $crate::modules::Api {
            $crate::modules::api::<dyn $api>(std::sync::Arc::new(<$client>::new(rpc)))
        }

        fn observed(
            api: &$crate::modules::Api,
            transport: shop_kernel::observe::Transport,
            observer: std::sync::Arc<dyn shop_kernel::observe::CallObserver>,
        ) -> Option<$crate::modules::Api> {
            let inner = $crate::modules::typed::<dyn $api>(api)?;
            Some($crate::modules::api::<dyn $api>(std::sync::Arc::new(
                <$observed>::new(inner, transport, observer),
            )))
        }

        fn app_data(api: &$crate::modules::Api, cfg: &mut actix_web::web::ServiceConfig) {
            if let Some(typed) = $crate::modules::typed::<dyn $api>(api) {
                cfg.app_data(actix_web::web::Data::from(typed));
            }
        }
    };
}
