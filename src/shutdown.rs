//! Stopping in the order an orchestrator expects. On SIGTERM (or SIGINT) readiness fails at once while
//! requests are still served for a drain delay, so that load balancers take the instance out of rotation
//! before it stops accepting; then the listeners close, in-flight requests finish and the background tasks
//! stop, all within one bound; then the process exits 0. The defaults (5 s + 20 s) fit in Kubernetes' 30 s
//! grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::server::RunningServer;

/// Set once the process is stopping: readiness answers 503 `draining`.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// From now on the process is draining.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once the process is stopping.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// How long each phase of a shutdown may take.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownBounds {
    /// Readiness fails and requests are still served this long (`SHOP_SHUTDOWN_DRAIN_MS`).
    pub drain: Duration,
    /// Then in-flight requests and background tasks get this long to finish (`SHOP_SHUTDOWN_TIMEOUT_SECS`).
    pub timeout: Duration,
}

/// Serves until SIGTERM or SIGINT, then shuts down: drain (a second signal cuts it short), stop accepting,
/// finish in-flight requests and stop the background tasks within the bound. An error only when the server
/// itself failed; a shutdown that hit its bound is logged and still counts as a clean stop.
pub async fn serve(running: RunningServer) -> std::io::Result<()> {
    let RunningServer {
        server,
        tasks,
        draining,
        shutdown,
        ..
    } = running;
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    let mut signals = Signals::new()?;
    let signal = tokio::select! {
        served = &mut server => {
            stop_tasks(&tasks, shutdown.timeout).await;
            return served;
        }
        signal = signals.next() => signal,
    };
    draining.start();
    tracing::info!(
        signal,
        drain_ms = shutdown.drain.as_millis() as u64,
        "stopping: readiness fails from now on, requests are still served while load balancers catch up \
         (a second signal stops at once)"
    );
    tokio::select! {
        served = &mut server => {
            stop_tasks(&tasks, shutdown.timeout).await;
            return served;
        }
        () = tokio::time::sleep(shutdown.drain) => {}
        signal = signals.next() => tracing::info!(signal, "drain cut short"),
    }
    tracing::info!(
        bound_secs = shutdown.timeout.as_secs(),
        "no longer accepting; finishing in-flight requests and background tasks"
    );
    let deadline = tokio::time::Instant::now() + shutdown.timeout;
    let requests = async {
        // actix forces the remaining connections closed at its own shutdown timeout (the same bound); this
        // one is the backstop.
        match tokio::time::timeout_at(deadline, async {
            let ((), served) = tokio::join!(handle.stop(true), &mut server);
            served
        })
        .await
        {
            Ok(served) => served,
            Err(_) => {
                tracing::warn!("requests still running at the shutdown bound are cut off");
                Ok(())
            }
        }
    };
    let (served, ()) = tokio::join!(requests, stop_tasks(&tasks, shutdown.timeout));
    served
}

async fn stop_tasks(tasks: &shop_kernel::tasks::BackgroundTasks, bound: Duration) {
    match tasks.shutdown(bound).await {
        Ok(()) => tracing::info!("background tasks stopped"),
        Err(stuck) => tracing::warn!(?stuck, "background tasks aborted at the shutdown bound"),
    }
}

/// The signals that stop the process.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The name of the next stop signal received.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}
