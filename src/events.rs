//! Event delivery, wired here: each outbox of a module that runs in this process gets a relay that hands
//! its events to the subscribing modules through their contracts (in-process or over HTTP, whichever this
//! process has), plus gauges of the backlog and a purge of old delivered events.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use shop_kernel::events::outbox::{Backoff, Outbox};
use shop_kernel::events::relay::Relay;
use shop_kernel::events::{ContractDelivery, EventHandler, Subscription};
use shop_kernel::tasks::BackgroundTasks;

use crate::app::{Modules, StartupError};
use crate::config::{Config, Module};

/// How often the backlog gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

/// How often old delivered events are purged.
const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// The backlog gauges on `/metrics`.
#[derive(Clone)]
struct BacklogGauges {
    undelivered: IntGaugeVec,
    oldest_age: IntGaugeVec,
}

impl BacklogGauges {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let undelivered = IntGaugeVec::new(
            Opts::new(
                "shop_outbox_undelivered_events",
                "Events written to a module's outbox and not yet delivered to every subscriber",
            ),
            &["module"],
        )?;
        let oldest_age = IntGaugeVec::new(
            Opts::new(
                "shop_outbox_oldest_undelivered_age_seconds",
                "Age of the oldest undelivered event of a module's outbox (0 when none)",
            ),
            &["module"],
        )?;
        registry.register(Box::new(undelivered.clone()))?;
        registry.register(Box::new(oldest_age.clone()))?;
        Ok(BacklogGauges {
            undelivered,
            oldest_age,
        })
    }
}

/// Every subscriber this process can reach, through whichever implementation of its contract it has.
fn handlers(modules: &Modules) -> Vec<Arc<dyn EventHandler>> {
    crate::modules::ALL
        .iter()
        .filter_map(|def| {
            let api = modules.apis.by_name(def.name)?;
            (def.event_handler)(api)
        })
        .collect()
}

/// Every subscription the module table declares, reachable from here or not: delivery never reports an
/// event delivered while one of its declared subscribers is missing (configuration refuses such a process,
/// see `Config::check_subscribers`; this holds even if a path around it is ever added).
fn subscriptions() -> Vec<Subscription> {
    crate::modules::ALL
        .iter()
        .filter(|def| !def.subscribes_to.is_empty())
        .map(|def| Subscription {
            subscriber: def.name,
            event_types: def.subscribes_to,
        })
        .collect()
}

/// Starts a relay for each local module with an outbox, with its gauges and purge, in `tasks`.
pub fn start(
    config: &Config,
    modules: &Modules,
    tasks: &BackgroundTasks,
    registry: &Registry,
) -> Result<(), StartupError> {
    let gauges = BacklogGauges::register(registry)
        .map_err(|e| StartupError::Other(format!("metrics: {e}")))?;
    let subscribers = handlers(modules);
    for def in crate::modules::ALL {
        let Some(table) = def.outbox_table else {
            continue;
        };
        let Some((_, db)) = modules
            .databases
            .iter()
            .find(|(m, _)| Some(*m) == Module::parse(def.name))
        else {
            continue;
        };
        let delivery = ContractDelivery::new(def.name, subscriptions(), subscribers.clone());
        let relay = Relay::new(
            def.name,
            db.clone(),
            Outbox::new(table),
            Arc::new(delivery),
            config.event_claim_lease,
            Backoff {
                base: config.event_retry_base,
                max: config.event_retry_max,
            },
        );
        spawn_relay(tasks, relay.clone(), config.event_relay_interval);
        spawn_upkeep(tasks, relay, gauges.clone(), config.event_retention);
    }
    Ok(())
}

fn spawn_relay(tasks: &BackgroundTasks, relay: Relay, every: Duration) {
    tasks.every("events.relay", every, move || {
        let relay = relay.clone();
        async move {
            // A full batch means more are due: keep going rather than wait a tick per batch.
            loop {
                match relay.round().await {
                    Ok(round) if round.was_full() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(module = relay.module(), error = %e, "event relay failed");
                        break;
                    }
                }
            }
        }
    });
}

fn spawn_upkeep(tasks: &BackgroundTasks, relay: Relay, gauges: BacklogGauges, retention: Duration) {
    let ticks_per_purge = (PURGE_EVERY.as_secs() / GAUGE_EVERY.as_secs()).max(1);
    let tick = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tasks.every("events.upkeep", GAUGE_EVERY, move || {
        let (relay, gauges, tick) = (relay.clone(), gauges.clone(), tick.clone());
        async move {
            let module = relay.module();
            match relay.backlog().await {
                Ok(backlog) => {
                    let age = backlog
                        .oldest
                        .map_or(0, |at| (shop_kernel::db::now() - at).num_seconds().max(0));
                    gauges
                        .undelivered
                        .with_label_values(&[module])
                        .set(backlog.undelivered);
                    gauges.oldest_age.with_label_values(&[module]).set(age);
                }
                Err(e) => tracing::warn!(module, error = %e, "outbox backlog unreadable"),
            }
            if tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ticks_per_purge == 0 {
                match relay.purge(retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(module, purged = n, "old delivered events purged"),
                    Err(e) => tracing::warn!(module, error = %e, "outbox purge failed"),
                }
            }
        }
    });
}
