//! Prometheus metrics beyond HTTP requests: every module call, by module, operation, transport and outcome.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use shop_kernel::observe::{CallObserver, CallRecord};

/// Feeds module-call records into a Prometheus registry.
pub struct ModuleCallMetrics {
    calls: IntCounterVec,
    duration: HistogramVec,
}

impl ModuleCallMetrics {
    /// Registers `shop_module_calls_total` and `shop_module_call_duration_seconds` in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new("shop_module_calls_total", "Calls to module contracts"),
            &["module", "operation", "transport", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "shop_module_call_duration_seconds",
                "Duration of calls to module contracts",
            ),
            &["module", "operation", "transport"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(ModuleCallMetrics { calls, duration })
    }
}

impl CallObserver for ModuleCallMetrics {
    fn record(&self, call: &CallRecord<'_>) {
        let transport = call.transport.as_str();
        self.calls
            .with_label_values(&[call.module, call.operation, transport, call.outcome])
            .inc();
        self.duration
            .with_label_values(&[call.module, call.operation, transport])
            .observe(call.elapsed.as_secs_f64());
    }
}
