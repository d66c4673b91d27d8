//! What an in-process module call costs on top of the implementation: the `Observed` wrapper (access
//! check, tracing span, timing, the Prometheus record) and building the request context a handler passes.
//! Goal: at most 2 µs per call (docs/performance.md).
//!
//!   cargo bench --bench module_call
//!
//! The implementation is a catalog that answers one fixed product, so what is measured is the wrapping,
//! not a database. Logging is installed as the server installs it (`RUST_LOG=warn` unless set), because
//! a disabled span costs something too.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use shop::metrics::ModuleCallMetrics;
use shop_catalog::{
    CatalogApi, CatalogError, NewProduct, Observed, Product, ProductPatch, ProductQuery,
};
use shop_kernel::RequestContext;
use shop_kernel::money::Money;
use shop_kernel::observe::Transport;
use shop_kernel::page::Page;
use uuid::Uuid;

/// A catalog holding one product in memory.
struct OneProduct(Product);

#[async_trait::async_trait]
impl CatalogApi for OneProduct {
    async fn list_products(
        &self,
        _: &RequestContext,
        _: ProductQuery,
    ) -> Result<Page<Product>, CatalogError> {
        Ok(Page {
            items: vec![self.0.clone()],
            next_cursor: None,
        })
    }
    async fn get_product(&self, _: &RequestContext, id: Uuid) -> Result<Product, CatalogError> {
        if id == self.0.id {
            Ok(self.0.clone())
        } else {
            Err(CatalogError::NotFound)
        }
    }
    async fn get_products(
        &self,
        _: &RequestContext,
        _: Vec<Uuid>,
    ) -> Result<Vec<Product>, CatalogError> {
        Ok(vec![self.0.clone()])
    }
    async fn create_product(
        &self,
        _: &RequestContext,
        _: NewProduct,
    ) -> Result<Product, CatalogError> {
        Err(CatalogError::NotFound)
    }
    async fn update_product(
        &self,
        _: &RequestContext,
        _: Uuid,
        _: ProductPatch,
    ) -> Result<Product, CatalogError> {
        Err(CatalogError::NotFound)
    }
}

/// The context `PublicContext` builds for an anonymous client (request id, deadline; no token).
fn client_context() -> RequestContext {
    RequestContext {
        request_id: shop_kernel::context::new_request_id(),
        deadline: Some(Instant::now() + Duration::from_secs(30)),
        ..Default::default()
    }
}

fn setup() -> (
    tokio::runtime::Runtime,
    Arc<dyn CatalogApi>,
    Arc<dyn CatalogApi>,
    Uuid,
) {
    // The server's subscriber (shop::telemetry), at the level a production server runs.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now();
    let product = Product {
        id: Uuid::now_v7(),
        sku: "MUG-1".into(),
        name: "Mug".into(),
        description: "A mug for benchmarks.".into(),
        price: Money {
            amount_minor: 1299,
            currency: "EUR".into(),
        },
        active: true,
        created_at: now,
        updated_at: now,
    };
    let id = product.id;
    let inner: Arc<dyn CatalogApi> = Arc::new(OneProduct(product));
    let registry = prometheus::Registry::new();
    let metrics = ModuleCallMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
    let observed: Arc<dyn CatalogApi> = Arc::new(Observed::new(
        inner.clone(),
        Transport::InProcess,
        Arc::new(metrics),
    ));
    (runtime, inner, observed, id)
}

fn module_call(c: &mut Criterion) {
    let (runtime, inner, observed, id) = setup();
    let ctx = client_context();
    let mut group = c.benchmark_group("get_product");
    group.bench_function("implementation alone", |b| {
        b.iter(|| runtime.block_on(inner.get_product(black_box(&ctx), black_box(id))))
    });
    group.bench_function("through Observed", |b| {
        b.iter(|| runtime.block_on(observed.get_product(black_box(&ctx), black_box(id))))
    });
    group.bench_function("through Observed, with a fresh context", |b| {
        b.iter(|| runtime.block_on(observed.get_product(&client_context(), black_box(id))))
    });
    group.finish();

    // The difference, measured side by side in this run (criterion reports each alone).
    // `cargo test --bench module_call` (CI's smoke) runs each benchmark once; so few calls here.
    let measuring = std::env::args().any(|a| a == "--bench");
    let calls: u32 = if measuring { 200_000 } else { 1_000 };
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..calls {
            f();
        }
        started.elapsed() / calls
    };
    let mut alone = Duration::MAX;
    let mut wrapped = Duration::MAX;
    for _ in 0..5 {
        alone = alone.min(time(&|| {
            let _ = black_box(runtime.block_on(inner.get_product(&ctx, black_box(id))));
        }));
        wrapped = wrapped.min(time(&|| {
            let _ =
                black_box(runtime.block_on(observed.get_product(&client_context(), black_box(id))));
        }));
    }
    let cost = wrapped.saturating_sub(alone);
    if !measuring {
        println!("\nsmoke run (cargo test): {calls} calls each, not a measurement");
        return;
    }
    println!(
        "\nin-process call: implementation alone {alone:?}, through Observed with a fresh context {wrapped:?}; \
         the wrapper and context cost {cost:?} per call (goal <= 2 µs)"
    );
}

criterion_group!(benches, module_call);
criterion_main!(benches);
