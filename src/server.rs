//! HTTP server assembly: module routes (local, or mounted over the remote client), operations endpoints,
//! middleware, and startup/shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, get, web};
use serde::Serialize;
use shop_kernel::http::{
    TrustForwarded, json_config, not_found, path_config, payload_config, query_config,
};
use shop_kernel::tasks::BackgroundTasks;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::app::{Modules, StartupError, build, ensure_admin};
use crate::bounds::{Bounds, bounded};
use crate::config::{Config, Module};
use crate::metrics::ModuleCallMetrics;
use crate::shutdown::{Draining, ShutdownBounds};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Result of a readiness check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `not_ready` (a database of this process is down) or `draining` (the process is stopping).
    pub status: String,
    /// One entry per dependency: `database:<module>` (decides readiness) or `remote:<module>` (shown only: a
    /// module served elsewhere being down takes its routes to 503, not this whole process out of rotation).
    pub checks: Vec<Check>,
}

/// One readiness check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// `up` or `down` (`unknown` for a remote module not probed yet).
    pub status: String,
    /// Why it is down: only on the internal listener (it can name hosts and drivers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How long a readiness result is reused: probing readiness cannot fan load out onto databases and remotes.
const READINESS_TTL: Duration = Duration::from_secs(1);

/// Each component's name and, when it is down, why.
type ComponentStates = Vec<(String, Option<String>)>;

/// The last readiness result; one check runs at a time and everyone else reuses its answer.
#[derive(Default)]
pub struct ReadinessCache(tokio::sync::Mutex<Option<(Instant, ComponentStates)>>);

async fn check_databases(modules: &Modules) -> ComponentStates {
    let mut checks = Vec::new();
    for (module, db) in &modules.databases {
        let failure = match tokio::time::timeout(Duration::from_secs(3), db.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_string()),
        };
        if let Some(reason) = &failure {
            tracing::warn!(component = %format!("database:{module}"), %reason, "readiness: database down");
        }
        checks.push((format!("database:{module}"), failure));
    }
    checks
}

/// What the last probe of each remote module found: `None` when it answered, else why not. A module not
/// probed yet has no entry.
#[derive(Clone, Default)]
pub struct RemoteStates(Arc<std::sync::Mutex<BTreeMap<Module, Option<String>>>>);

impl RemoteStates {
    /// Records a probe's outcome; a change is logged (once, not at every probe).
    fn record(&self, module: Module, failure: Option<String>) {
        let Ok(mut states) = self.0.lock() else {
            return;
        };
        let before = states.insert(module, failure.clone());
        match (before, &failure) {
            (Some(None) | None, Some(reason)) => {
                tracing::warn!(module = module.name(), %reason, "remote module down");
            }
            (Some(Some(_)), None) => {
                tracing::info!(module = module.name(), "remote module up again")
            }
            _ => {}
        }
    }

    fn snapshot(&self) -> BTreeMap<Module, Option<String>> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Probes every remote module every `every` (the first time at once) into `states` and the gauge
/// `shop_remote_module_up{module}` (1 up, 0 down). In the background, not in readiness: a remote that hangs
/// would make the readiness answer wait for its timeout.
fn watch_remotes(
    modules: &Modules,
    tasks: &BackgroundTasks,
    registry: &prometheus::Registry,
    every: Duration,
) -> Result<RemoteStates, prometheus::Error> {
    let states = RemoteStates::default();
    if modules.remotes.is_empty() {
        return Ok(states);
    }
    let up = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "shop_remote_module_up",
            "Whether the last probe of a remote module succeeded (1) or not (0)",
        ),
        &["module"],
    )?;
    registry.register(Box::new(up.clone()))?;
    let remotes = modules.remotes.clone();
    let recorded = states.clone();
    tasks.spawn("remotes.probe", move |mut stop| async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.stopped() => return,
                _ = ticker.tick() => {}
            }
            let probes = remotes.iter().map(|(module, client)| async move {
                (*module, client.probe(module.name()).await.err())
            });
            // Probes only read: a shutdown does not wait for a silent remote's timeout.
            let results = tokio::select! {
                _ = stop.stopped() => return,
                results = futures_util::future::join_all(probes) => results,
            };
            for (module, failure) in results {
                up.with_label_values(&[module.name()])
                    .set(i64::from(failure.is_none()));
                recorded.record(module, failure);
            }
        }
    });
    Ok(states)
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_liveness",
    responses((status = 200, description = "Alive"))
)]
#[get("/health/live")]
async fn health_live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "live" }))
}

/// Readiness: what this process needs to serve, its own databases. Remote modules are listed as their last
/// probe found them (with the service credential) but do not decide: one module's outage must not take every
/// instance that calls it out of rotation. While the process is stopping the answer is 503 `draining`. Each
/// component is `up` or `down`; why is only told on the internal listener.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_readiness",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A database is down, or the process is stopping", body = Readiness),
    )
)]
#[get("/health/ready")]
async fn health_ready(
    req: actix_web::HttpRequest,
    modules: web::Data<Modules>,
    cache: web::Data<ReadinessCache>,
    remotes: web::Data<RemoteStates>,
    draining: web::Data<Draining>,
) -> HttpResponse {
    if draining.is_draining() {
        return HttpResponse::ServiceUnavailable().json(Readiness {
            status: "draining".into(),
            checks: Vec::new(),
        });
    }
    let databases = {
        let mut last = cache.0.lock().await;
        match &*last {
            Some((at, results)) if at.elapsed() < READINESS_TTL => results.clone(),
            _ => {
                let results = check_databases(&modules).await;
                *last = Some((Instant::now(), results.clone()));
                results
            }
        }
    };
    let detailed = Listeners::is_internal(&req);
    let ready = databases.iter().all(|(_, failure)| failure.is_none());
    let probed = remotes.snapshot();
    let mut checks: Vec<Check> = databases
        .into_iter()
        .map(|(name, failure)| Check {
            name,
            status: if failure.is_none() { "up" } else { "down" }.into(),
            detail: failure.filter(|_| detailed),
        })
        .collect();
    for (module, _) in &modules.remotes {
        let (status, detail) = match probed.get(module) {
            None => ("unknown", None),
            Some(None) => ("up", None),
            Some(Some(reason)) => ("down", Some(reason.clone())),
        };
        checks.push(Check {
            name: format!("remote:{module}"),
            status: status.into(),
            detail: detail.filter(|_| detailed),
        });
    }
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        checks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The address of the listener a connection came in on (set when the connection opens).
#[derive(Clone, Copy)]
struct LocalAddr(SocketAddr);

/// Where the internal listener is, if there is one.
#[derive(Clone, Copy, Default)]
struct Listeners {
    internal: Option<SocketAddr>,
}

impl Listeners {
    /// True when the request came in on the internal listener (by port, and by address unless the
    /// listener is bound to every interface, where connections report the interface they arrived on).
    fn is_internal(req: &actix_web::HttpRequest) -> bool {
        let Some(internal) = req
            .app_data::<web::Data<Listeners>>()
            .and_then(|l| l.internal)
        else {
            return false;
        };
        req.conn_data::<LocalAddr>()
            .is_some_and(|LocalAddr(local)| {
                local.port() == internal.port()
                    && (internal.ip().is_unspecified() || local.ip() == internal.ip())
            })
    }
}

/// With an internal listener, `/internal` and `/metrics` are not served on the public one. The path is read
/// as the router will match it (percent-decoded), so `/%69nternal/...` is hidden too.
fn hidden_from_public(req: &ServiceRequest) -> Option<HttpResponse> {
    let listeners = req.app_data::<web::Data<Listeners>>()?;
    if listeners.internal.is_none() || Listeners::is_internal(req.request()) {
        return None;
    }
    let path = req.match_info().as_str();
    if path == "/internal" || path.starts_with("/internal/") {
        // A caller pointed at the public port gets the deployment fault it is, not a business 404.
        Some(unknown_operation())
    } else if path == "/metrics" {
        Some(problem_not_found("No such route."))
    } else {
        None
    }
}

fn unknown_operation() -> HttpResponse {
    shop_kernel::http::problem_response(&shop_kernel::Problem::new(
        404,
        shop_kernel::problem::codes::UNKNOWN_OPERATION,
        "Unknown operation",
        "This listener serves no such module or operation.",
    ))
}

type GateFuture<B> =
    Pin<Box<dyn Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>>>;

fn gate<S, B>(req: ServiceRequest, srv: &S) -> GateFuture<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    if let Some(refusal) = hidden_from_public(&req) {
        let resp = req.into_response(refusal.map_into_boxed_body());
        return Box::pin(async move { Ok(resp.map_into_right_body()) });
    }
    let fut = srv.call(req);
    Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
}

fn problem_not_found(detail: &str) -> HttpResponse {
    shop_kernel::http::problem_response(&shop_kernel::Problem::not_found(detail))
}

/// The routes of the operations endpoints that the OpenAPI document lists.
pub fn operations_routes(cfg: &mut ServiceConfig) {
    cfg.service(health_live).service(health_ready);
}

/// Registers the public routes of every module this process can reach (local, or over its client).
fn module_routes(modules: &Modules) -> impl FnOnce(&mut ServiceConfig) + use<> {
    let reachable: Vec<&'static crate::modules::ModuleDef> = modules
        .apis
        .names()
        .filter_map(crate::modules::find)
        .collect();
    move |cfg| {
        for def in reachable {
            cfg.configure(def.public_routes);
        }
    }
}

/// Registers the `/internal` routes of the local modules.
fn internal_routes(modules: &Modules) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let local: Vec<Module> = modules.databases.iter().map(|(m, _)| *m).collect();
    move |cfg| {
        for module in local {
            (module.def().internal_routes)(cfg);
        }
    }
}

/// Puts every reachable module's typed API into the app, for its handlers.
fn module_data(modules: &Modules) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let apis = modules.apis.clone();
    move |cfg| {
        for name in apis.names() {
            if let (Some(def), Some(api)) = (crate::modules::find(name), apis.by_name(name)) {
                (def.app_data)(api, cfg);
            }
        }
    }
}

/// The OpenAPI document of the public API this process serves (`/openapi.json`): no `/internal` operation.
pub fn served_openapi(modules: &Modules, currency: &str) -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .configure(operations_routes)
        .configure(module_routes(modules))
        .split_for_parts();
    crate::openapi::finish(
        doc,
        "shop",
        "The shop API as served by this process.",
        currency,
    )
}

/// The OpenAPI document of the `/internal` operations of this process's modules, for the services that call
/// them (`/internal/openapi.json`, which needs a service credential, on the internal listener when there is
/// one).
pub fn served_internal_openapi(
    modules: &Modules,
    currency: &str,
) -> Result<utoipa::openapi::OpenApi, String> {
    let mut doc = utoipa::openapi::OpenApi::default();
    for (module, _) in &modules.databases {
        for (path, item) in crate::openapi::internal_paths_of(*module)? {
            doc.paths.paths.insert(path, item);
        }
    }
    Ok(crate::openapi::finish(
        doc,
        "shop internal",
        "The /internal operations of the modules this process runs, for the services that call them.",
        currency,
    ))
}

/// A JSON document served as it was serialised at startup.
fn json_document(json: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(json)
}

/// The routes this process serves and their methods, read from its OpenAPI document, so that a known path
/// asked with another method gets 405 (with `Allow`) instead of 404.
#[derive(Clone, Default)]
struct KnownRoutes(Vec<(Vec<String>, Vec<&'static str>)>);

impl KnownRoutes {
    fn of(docs: &[&utoipa::openapi::OpenApi]) -> Self {
        let routes = docs
            .iter()
            .flat_map(|doc| doc.paths.paths.iter())
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, present)| present.then_some(m))
                .collect();
                (path.split('/').map(str::to_string).collect(), methods)
            })
            .collect();
        KnownRoutes(routes)
    }

    /// The methods served at `path`, if it matches a known route template.
    fn allowed(&self, path: &str) -> Vec<&'static str> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut out = Vec::new();
        for (template, methods) in &self.0 {
            let matches = template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                });
            if matches {
                out.extend(methods.iter().copied());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Unknown routes: 405 with `Allow` for a known path, else 404 — always a problem document. An unknown
/// `/internal` path is `unknown_operation`, so the calling service sees a deployment fault, not a 404 of
/// its business.
async fn fallback(req: actix_web::HttpRequest, routes: web::Data<KnownRoutes>) -> HttpResponse {
    let allowed = routes.allowed(req.path());
    if allowed.is_empty() {
        if req.path().starts_with("/internal/") {
            return unknown_operation();
        }
        return not_found().await;
    }
    let mut resp = shop_kernel::http::problem_response(&shop_kernel::Problem::new(
        405,
        shop_kernel::problem::codes::METHOD_NOT_ALLOWED,
        "Method not allowed",
        format!("{} is not served at this path.", req.method()),
    ));
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    resp
}

/// Adds or propagates `x-request-id`, and logs each request once in a span that carries it.
fn traced<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<
            actix_web::dev::ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    let mut req = req;
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(shop_kernel::context::new_request_id);
    let header = HeaderValue::from_str(&request_id).ok();
    if let Some(h) = &header {
        req.headers_mut().insert(REQUEST_ID, h.clone());
    }
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let fut = span.in_scope(|| srv.call(req));
    async move {
        let mut res = match shop_kernel::http::with_request_id(request_id, fut).await {
            Ok(res) => res,
            Err(e) => {
                // A request cut off at a bound comes back as an error holding its response (see `bounds`),
                // no longer routed: its line still belongs in the access log.
                if tracing::enabled!(tracing::Level::INFO) {
                    let status = e.as_response_error().status_code().as_u16();
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                    tracing::info!(status, route = "UNMATCHED", elapsed_ms, "request finished");
                }
                return Err(e);
            }
        };
        // The access line only: a 5xx's cause was logged once where its response was built. Matching the
        // route again costs a walk of the router, so only when the line is written.
        if tracing::enabled!(tracing::Level::INFO) {
            let status = res.status().as_u16();
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "UNMATCHED".into());
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(status, %route, elapsed_ms, "request finished");
        }
        if let Some(h) = header {
            res.headers_mut().insert(REQUEST_ID, h);
        }
        Ok(res)
    }
    .instrument(span)
}

/// The benchmark's yardstick: `/health/live` answered by a bare actix-web app on the same runtime and
/// worker count, so the cost of the shop's middleware is the difference between the two listeners.
fn bare_server(addr: &str, workers: Option<usize>) -> Result<actix_web::dev::Server, StartupError> {
    let mut server = HttpServer::new(|| App::new().service(health_live))
        .bind(addr)
        .map_err(|e| {
            StartupError::Other(format!(
                "cannot listen on {addr} (SHOP_BENCH_BARE_ADDR): {e}"
            ))
        })?
        .disable_signals();
    if let Some(workers) = workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.run())
}

/// A started server: its address, and the future that runs it until shutdown.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The internal listener's bound address, when `SHOP_INTERNAL_ADDR` is set.
    pub internal_addr: Option<SocketAddr>,
    /// Runs the server; resolves after a graceful shutdown (SIGTERM, SIGINT or the handle).
    pub server: actix_web::dev::Server,
    /// The modules the server was built with.
    pub modules: Modules,
    /// The background tasks; stop them (`shutdown`) once the server has stopped.
    pub tasks: Arc<BackgroundTasks>,
    /// Set it and readiness answers 503 `draining` ([`crate::shutdown::serve`] does on SIGTERM).
    pub draining: Draining,
    /// How long the drain and the rest of a shutdown may take.
    pub shutdown: ShutdownBounds,
}

/// Opens databases, applies migrations, ensures the admin, binds the address and starts the workers. If
/// startup fails, the background tasks already started are stopped again.
pub async fn start(config: Config) -> Result<RunningServer, StartupError> {
    let tasks = Arc::new(BackgroundTasks::new());
    match start_with(config, tasks.clone()).await {
        Ok(running) => Ok(running),
        Err(e) => {
            if let Err(stuck) = tasks.shutdown(Duration::from_secs(5)).await {
                tracing::warn!(?stuck, "background tasks aborted after a failed startup");
            }
            Err(e)
        }
    }
}

async fn start_with(
    config: Config,
    tasks: Arc<BackgroundTasks>,
) -> Result<RunningServer, StartupError> {
    let registry = prometheus::Registry::new();
    let observer = ModuleCallMetrics::register(&registry)
        .map_err(|e| StartupError::Other(format!("metrics: {e}")))?;
    let build_config = config.clone();
    let build_tasks = tasks.clone();
    // Built on the blocking pool (migrations block); background tasks start on this runtime.
    let handle = tokio::runtime::Handle::current();
    let modules = tokio::task::spawn_blocking(move || {
        let _runtime = handle.enter();
        build(&build_config, Arc::new(observer), Some(&build_tasks))
    })
    .await
    .map_err(|e| StartupError::Other(e.to_string()))??;
    ensure_admin(&config, &modules).await?;
    crate::events::start(&config, &modules, &tasks, &registry)?;
    let remote_states = watch_remotes(&modules, &tasks, &registry, config.remote_probe_interval)
        .map_err(|e| StartupError::Other(format!("metrics: {e}")))?;
    let remote_budget = config.remote_timeout * 2;
    if !modules.remotes.is_empty() && config.http_handler_timeout <= remote_budget {
        tracing::warn!(
            handler_ms = config.http_handler_timeout.as_millis() as u64,
            remote_budget_ms = remote_budget.as_millis() as u64,
            "SHOP_HTTP_HANDLER_TIMEOUT_MS is not above the remote-call budget (twice SHOP_REMOTE_TIMEOUT_MS): \
             requests waiting on a module that does not answer are cut off before its own 503"
        );
    }

    let listener = std::net::TcpListener::bind(&config.http_addr).map_err(|e| {
        StartupError::Other(format!(
            "cannot listen on {} (SHOP_HTTP_ADDR): {e}",
            config.http_addr
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;

    let openapi = served_openapi(&modules, &config.currency);
    let internal_openapi =
        served_internal_openapi(&modules, &config.currency).map_err(StartupError::Other)?;
    let known_routes = web::Data::new(KnownRoutes::of(&[&openapi, &internal_openapi]));
    // Serialised once and shared: handing Swagger UI the document made every worker keep its own copy and
    // serialise it on every request.
    let to_json = |doc: &utoipa::openapi::OpenApi| {
        serde_json::to_vec(doc)
            .map(web::Bytes::from)
            .map_err(|e| StartupError::Other(format!("openapi: {e}")))
    };
    let openapi_json = to_json(&openapi)?;
    let internal_openapi_json = to_json(&internal_openapi)?;
    drop((openapi, internal_openapi));
    let cut_off_counter = Bounds::cut_off_counter(&registry)
        .map_err(|e| StartupError::Other(format!("metrics: {e}")))?;
    let metrics = actix_web_prom::PrometheusMetricsBuilder::new("shop")
        .registry(registry)
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| StartupError::Other(format!("metrics: {e}")))?;
    let state = web::Data::new(modules.clone());
    let verifier = web::Data::from(modules.verifier.clone());
    let service_auth = web::Data::new(config.service_auth());
    let internal_listener = match &config.internal_addr {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
            StartupError::Other(format!("cannot listen on {addr} (SHOP_INTERNAL_ADDR): {e}"))
        })?),
        None => None,
    };
    let internal_addr = internal_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let listeners = web::Data::new(Listeners {
        internal: internal_addr,
    });
    let readiness = web::Data::new(ReadinessCache::default());
    let remote_states = web::Data::new(remote_states);
    let draining = Draining::default();
    let draining_data = web::Data::new(draining.clone());
    let bounds = Bounds {
        body: config.http_body_timeout,
        handler: config.http_handler_timeout,
        draining: draining.clone(),
        cut_off: cut_off_counter,
    };
    let trust_forwarded = web::Data::new(TrustForwarded(config.trust_forwarded));
    let apis = modules.clone();
    let app_modules = modules.clone();

    let mut server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(json_config())
            .app_data(path_config())
            .app_data(query_config())
            .app_data(payload_config())
            .app_data(state.clone())
            .app_data(verifier.clone())
            .app_data(service_auth.clone())
            .app_data(listeners.clone())
            .app_data(readiness.clone())
            .app_data(remote_states.clone())
            .app_data(draining_data.clone())
            .app_data(known_routes.clone())
            .app_data(trust_forwarded.clone());
        app = app.configure(module_data(&apis));
        app.into_utoipa_app()
            .configure(operations_routes)
            .configure(module_routes(&app_modules))
            .into_app()
            .configure(internal_routes(&app_modules))
            .route(
                "/openapi.json",
                web::get().to({
                    let json = openapi_json.clone();
                    move || {
                        let json = json.clone();
                        async move { json_document(json) }
                    }
                }),
            )
            .route(
                "/internal/openapi.json",
                web::get().to({
                    let json = internal_openapi_json.clone();
                    move |_: shop_kernel::http::InternalContext| {
                        let json = json.clone();
                        async move { json_document(json) }
                    }
                }),
            )
            .service(
                utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                    .config(utoipa_swagger_ui::Config::from("/openapi.json")),
            )
            .route(
                "/docs",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header(("location", "/docs/"))
                        .finish()
                }),
            )
            .default_service(web::to(fallback))
            .wrap_fn({
                let bounds = bounds.clone();
                move |req, srv| bounded(req, srv, &bounds)
            })
            .wrap(metrics.clone())
            .wrap_fn(traced)
            .wrap_fn(gate)
    })
    .on_connect(|conn, ext| {
        if let Some(addr) = conn
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|s| s.local_addr().ok())
        {
            ext.insert(LocalAddr(addr));
        }
    })
    .listen(listener)
    .map_err(|e| StartupError::Other(e.to_string()))?
    // Only a connection's first request head is bounded by actix: a keep-alive connection that sent one
    // request in time may dribble the next head (it holds a connection, not a worker).
    .client_request_timeout(config.http_head_timeout)
    // SIGTERM and SIGINT are handled by `shutdown::serve`, which fails readiness before it stops accepting.
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs().max(1));
    if let Some(internal) = internal_listener {
        server = server
            .listen(internal)
            .map_err(|e| StartupError::Other(e.to_string()))?;
    }
    if let Some(workers) = config.workers {
        server = server.workers(workers.max(1));
    }
    // Database work runs on each worker's blocking pool. Left at its default (512 ÷ cores), the pool grew a
    // thread whenever a task arrived just before a thread went back to idle: 70 threads taking turns on 10
    // connections. Capped at the pool size, a thread that finishes takes the next queued task without
    // sleeping (docs/performance.md).
    server = server.worker_max_blocking_threads(config.db_pool_size.max(2) as usize);
    if let Some(bare) = &config.bench_bare_addr {
        tokio::spawn(bare_server(bare, config.workers)?);
    }
    let server = server.run();
    tracing::info!(%addr, local = ?config.local_modules, remote = ?config.remote_urls.keys().collect::<Vec<_>>(), "shop is listening");
    Ok(RunningServer {
        addr,
        internal_addr,
        server,
        modules,
        tasks,
        draining,
        shutdown: ShutdownBounds {
            drain: config.shutdown_drain,
            timeout: config.shutdown_timeout,
        },
    })
}
