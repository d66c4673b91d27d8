//! actix-web glue shared by every module's HTTP server: problem responses, the request-context extractors,
//! the `/internal` RPC plumbing and the handlers that turn actix's own errors into problems.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use crate::auth::{TokenError, TokenVerifier};
use crate::context::Origin;
use crate::context::{Caller, RequestContext};
use crate::problem::{ApiError, PROBLEM_CONTENT_TYPE, Problem, codes};
use crate::rpc::{
    CLIENT_ADDR_HEADER, DEADLINE_HEADER, DispatchError, ORIGIN_HEADER, Operation,
    REQUEST_ID_HEADER, SERVICE_NAME_HEADER, SERVICE_TOKEN_HEADER,
};
use crate::secret::{Secret, constant_time_eq};

/// Largest JSON body a public endpoint accepts.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest body an `/internal` call accepts.
pub const MAX_RPC_BODY: usize = 1024 * 1024;
/// How long a request may take before module calls it makes stop waiting.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(30);

/// A problem as an actix error: handlers return `Result<_, HttpProblem>` and `?` module errors into it.
#[derive(Debug)]
pub struct HttpProblem(pub Box<Problem>);

impl HttpProblem {
    /// Wraps a problem.
    pub fn new(problem: Problem) -> Self {
        HttpProblem(Box::new(problem))
    }
}

impl std::fmt::Display for HttpProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0.title, self.0.code)
    }
}

impl<E: ApiError> From<E> for HttpProblem {
    fn from(e: E) -> Self {
        let problem = e.to_problem();
        // 5xx causes are logged here, once (inside the request's span, with its id); the body never carries
        // them (see `problem_response`).
        if problem.status == 503 {
            // Unavailable or saturated: expected under load and outages, not a defect.
            tracing::warn!(error = %e, code = %problem.code, "request failed");
        } else if problem.status >= 500 {
            tracing::error!(error = %e, code = %problem.code, "request failed");
        }
        HttpProblem::new(problem)
    }
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs a request's handling with its id at hand, so 5xx bodies can quote it.
pub async fn with_request_id<F: Future>(request_id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(request_id, fut).await
}

impl ResponseError for HttpProblem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        problem_response(&self.0)
    }
}

/// The HTTP response for a problem (with `Retry-After` when it says when to retry). A 5xx is shown
/// redacted: a generic detail and the request id, never the cause.
pub fn problem_response(problem: &Problem) -> HttpResponse {
    let redacted;
    let problem = if problem.status >= 500 {
        redacted =
            problem.redacted_for_client(REQUEST_ID.try_with(|id| id.clone()).ok().as_deref());
        &redacted
    } else {
        problem
    };
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE));
    if let Some(secs) = problem.retry_after {
        resp.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    resp.body(serde_json::to_string(problem).unwrap_or_default())
}

/// Whether the client address comes from the last `X-Forwarded-For` entry (only behind exactly one proxy
/// that appends it) or from the TCP peer (the default: the header is client-controlled otherwise).
#[derive(Clone, Copy, Debug, Default)]
pub struct TrustForwarded(pub bool);

/// The credentials `/internal` routes accept.
///
/// Single trust zone: every service presents the same shared token (`SHOP_SERVICE_TOKEN`), and its holder
/// may speak for any module. Per-service mode (opt-in): a service presents its name and its own secret, the
/// receiver holds only the SHA-256 digest of that secret (`SHOP_SERVICE_PEERS`), and the name lists the
/// modules it may speak for, so a leaked secret of one service cannot act as another module.
/// Two entries for one name, or two shared tokens, are accepted at once while a credential is rotated.
#[derive(Clone, Default)]
pub struct ServiceAuth {
    /// Shared tokens (the current one and, during a rotation, one more).
    pub shared: Vec<Secret>,
    /// Per-service credentials: the service's name and the SHA-256 digest of its secret.
    pub peers: Vec<(String, [u8; 32])>,
}

/// The modules a verified caller may speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    /// A holder of the shared token: any module.
    AnyModule,
    /// A named service: the modules its name lists (`ordering+notifications`).
    Modules(Vec<String>),
}

impl Speaker {
    fn may_speak_for(&self, module: &str) -> bool {
        match self {
            Speaker::AnyModule => true,
            Speaker::Modules(modules) => modules.iter().any(|m| m == module),
        }
    }
}

/// SHA-256 of a secret, as the receiving side stores it.
pub fn credential_digest(secret: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

impl ServiceAuth {
    /// True when no credential is configured: the process accepts no service calls.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.peers.is_empty()
    }

    /// Who a presented credential stands for, if it is accepted.
    pub fn verify(&self, name: Option<&str>, token: &str) -> Option<Speaker> {
        match name {
            None => self
                .shared
                .iter()
                .any(|s| s.matches(token.as_bytes()))
                .then_some(Speaker::AnyModule),
            Some(name) => {
                let digest = credential_digest(token);
                // Every entry is compared, so timing does not reveal which names exist.
                let ok = self.peers.iter().fold(false, |ok, (n, d)| {
                    ok | (constant_time_eq(n.as_bytes(), name.as_bytes())
                        & constant_time_eq(d, &digest))
                });
                ok.then(|| Speaker::Modules(name.split('+').map(str::to_string).collect()))
            }
        }
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn deployment_fault(status: u16, code: &str, detail: impl Into<String>) -> HttpProblem {
    let title = match code {
        codes::SERVICE_UNAUTHENTICATED => "Service credential rejected",
        codes::ORIGIN_NOT_ALLOWED => "Origin not allowed",
        codes::UNKNOWN_OPERATION => "Unknown operation",
        _ => "Bad call",
    };
    HttpProblem::new(Problem::new(status, code, title, detail))
}

fn unauthenticated(detail: &str) -> HttpProblem {
    HttpProblem::new(Problem::new(
        401,
        codes::UNAUTHENTICATED,
        "Unauthenticated",
        detail,
    ))
}

fn base_context(req: &HttpRequest) -> RequestContext {
    let request_id = header_str(req, REQUEST_ID_HEADER)
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(crate::context::new_request_id);
    RequestContext {
        request_id,
        traceparent: header_str(req, "traceparent").map(str::to_string),
        client_addr: client_addr(req),
        deadline: Some(Instant::now() + REQUEST_BUDGET),
        ..Default::default()
    }
}

fn client_addr(req: &HttpRequest) -> Option<String> {
    let trust = req
        .app_data::<web::Data<TrustForwarded>>()
        .is_some_and(|t| t.0);
    if trust {
        // The rightmost entry is the one our proxy appended; anything left of it is what the client claimed.
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|a| !a.is_empty());
        if let Some(addr) = forwarded {
            return Some(
                addr.parse::<std::net::SocketAddr>()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|_| addr.to_string()),
            );
        }
    }
    req.peer_addr().map(|a| a.ip().to_string())
}

async fn authenticate(
    req: &HttpRequest,
    mut ctx: RequestContext,
) -> Result<RequestContext, HttpProblem> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(ctx);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("Authorization must be `Bearer <access_token>`."))?;
    let verifier = req
        .app_data::<web::Data<TokenVerifier>>()
        .ok_or_else(|| unauthenticated("This server cannot verify access tokens."))?;
    match verifier.verify(token).await {
        Ok(user) => {
            ctx.caller = Caller::User(user);
            ctx.token = Some(token.to_string());
            Ok(ctx)
        }
        Err(TokenError::Invalid(reason)) => {
            tracing::debug!(%reason, "rejected access token");
            Err(unauthenticated("The access token is invalid or expired."))
        }
        Err(TokenError::KeysUnavailable(reason)) => Err(HttpProblem::new(Problem::unavailable(
            format!("Access tokens cannot be verified right now: {reason}"),
        ))),
    }
}

/// The request context of a public route: request id, client address and the verified caller.
/// A missing token gives an anonymous caller; an invalid one is rejected with 401.
pub struct PublicContext(pub RequestContext);

impl FromRequest for PublicContext {
    type Error = HttpProblem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = base_context(&req);
            authenticate(&req, ctx).await.map(PublicContext)
        })
    }
}

/// The request context of an `/internal` route: a service credential is required; the user token and the
/// origin (client, or a module the credential may speak for) travel with the call.
pub struct InternalContext(pub RequestContext);

impl FromRequest for InternalContext {
    type Error = HttpProblem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = req
                .app_data::<web::Data<ServiceAuth>>()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    deployment_fault(
                        401,
                        codes::SERVICE_UNAUTHENTICATED,
                        "This server accepts no service calls: it has no service credential configured.",
                    )
                })?;
            let presented = header_str(&req, SERVICE_TOKEN_HEADER).unwrap_or_default();
            let speaker = auth
                .verify(header_str(&req, SERVICE_NAME_HEADER), presented)
                .ok_or_else(|| {
                    deployment_fault(
                        401,
                        codes::SERVICE_UNAUTHENTICATED,
                        "The service credential is missing or not accepted.",
                    )
                })?;
            let mut ctx = base_context(&req);
            ctx.origin = match header_str(&req, ORIGIN_HEADER) {
                None | Some("client") => Origin::Client,
                Some(origin) => match origin.strip_prefix("module:") {
                    Some(module) if speaker.may_speak_for(module) => {
                        Origin::Module(module.to_string())
                    }
                    Some(module) => {
                        return Err(deployment_fault(
                            403,
                            codes::ORIGIN_NOT_ALLOWED,
                            format!("This credential may not speak for module {module}."),
                        ));
                    }
                    None => {
                        return Err(deployment_fault(
                            400,
                            codes::BAD_CALL,
                            format!("{ORIGIN_HEADER} must be `client` or `module:<name>`."),
                        ));
                    }
                },
            };
            // Only a holder of a service credential may say who the end client is.
            if let Some(addr) = header_str(&req, CLIENT_ADDR_HEADER).filter(|a| a.len() <= 64) {
                ctx.client_addr = Some(addr.to_string());
            }
            if let Some(ms) = header_str(&req, DEADLINE_HEADER).and_then(|v| v.parse::<u64>().ok())
            {
                ctx.deadline = Some(Instant::now() + Duration::from_millis(ms).min(REQUEST_BUDGET));
            }
            authenticate(&req, ctx).await.map(InternalContext)
        })
    }
}

/// The answer to an authenticated readiness probe of a module's `/internal` endpoint.
pub fn probe_response(module: &str, operations: &[Operation]) -> HttpResponse {
    let names: Vec<&str> = operations.iter().map(|op| op.name).collect();
    HttpResponse::Ok().json(serde_json::json!({ "module": module, "operations": names }))
}

/// Parses the JSON body of an `/internal` call.
pub fn rpc_arguments(body: &[u8]) -> Result<serde_json::Value, HttpProblem> {
    if body.is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| deployment_fault(400, codes::BAD_CALL, format!("Body is not JSON: {e}")))
}

/// The response to an `/internal` call.
pub fn rpc_response<E: ApiError>(
    result: Result<serde_json::Value, DispatchError<E>>,
) -> Result<HttpResponse, HttpProblem> {
    match result {
        Ok(value) => Ok(HttpResponse::Ok().json(value)),
        Err(DispatchError::Api(e)) => Err(e.into()),
        Err(DispatchError::UnknownOperation(op)) => Err(deployment_fault(
            404,
            codes::UNKNOWN_OPERATION,
            format!("No operation named {op} is served over HTTP."),
        )),
        Err(DispatchError::BadArguments(e)) => Err(deployment_fault(400, codes::BAD_CALL, e)),
        Err(DispatchError::Encode(e)) => {
            tracing::error!(error = %e, "cannot encode an operation's result");
            Err(HttpProblem::new(Problem::new(
                500,
                codes::INTERNAL,
                "Internal error",
                "",
            )))
        }
    }
}

/// 201 Created with a `Location` header and a JSON body.
pub fn created<T: serde::Serialize>(location: String, body: &T) -> HttpResponse {
    with_location(HttpResponse::Created(), location, body)
}

/// A 202 response: the request was taken but finishes later; `Location` says where to follow it.
pub fn accepted<T: serde::Serialize>(location: String, body: &T) -> HttpResponse {
    with_location(HttpResponse::Accepted(), location, body)
}

fn with_location<T: serde::Serialize>(
    mut builder: actix_web::HttpResponseBuilder,
    location: String,
    body: &T,
) -> HttpResponse {
    builder
        .insert_header((
            header::LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/")),
        ))
        .json(body)
}

/// JSON extractor settings: size limit and problem bodies for every way a body can be wrong.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_JSON_BODY)
        .error_handler(|err, _req| {
            let problem = match &err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => Problem::new(
                    413,
                    codes::PAYLOAD_TOO_LARGE,
                    "Payload too large",
                    format!("The body must not exceed {MAX_JSON_BODY} bytes."),
                ),
                JsonPayloadError::ContentType => Problem::new(
                    415,
                    codes::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported media type",
                    "The body must be JSON (Content-Type: application/json).",
                ),
                JsonPayloadError::Deserialize(e) if e.is_data() => misshapen(e),
                JsonPayloadError::Deserialize(e) => {
                    Problem::bad_request(format!("Malformed JSON: {e}"))
                }
                other => Problem::bad_request(other.to_string()),
            };
            HttpProblem::new(problem).into()
        })
}

/// A body read as a JSON object, then as `T`: for bodies whose fields are all optional, which serde would
/// also take from a JSON array of the same length (`[null, null]`), against the schema's `object`.
pub fn from_object<T: serde::de::DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, HttpProblem> {
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| HttpProblem::new(misshapen(&e)))
}

/// 422 for well-formed JSON of the wrong shape (a wrong type, a missing field).
fn misshapen(e: &serde_json::Error) -> Problem {
    let mut p = Problem::validation(vec![crate::problem::FieldError::new("body", e.to_string())]);
    p.detail = Some(format!("The body does not match the expected shape: {e}"));
    p
}

/// Path-parameter errors (e.g. a malformed id) become 400 problems.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        HttpProblem::new(Problem::bad_request(format!(
            "Invalid path parameter: {err}"
        )))
        .into()
    })
}

/// Query-string errors become 400 problems.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        HttpProblem::new(Problem::bad_request(format!("Invalid query string: {err}"))).into()
    })
}

/// Raw-body limit for `/internal` calls.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_RPC_BODY)
}

/// The default service: any unknown route is a 404 problem.
pub async fn not_found() -> HttpResponse {
    problem_response(&Problem::new(
        404,
        codes::NOT_FOUND,
        "Not found",
        "No such route.",
    ))
}

/// The `Idempotency-Key` header, if present (length is checked by the module's service layer).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, HttpProblem> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
            HttpProblem::new(Problem::validation(vec![crate::problem::FieldError::new(
                "Idempotency-Key",
                "must be visible ASCII",
            )]))
        }),
    }
}

/// The admin routes over a publishing module's outbox, written once for every publisher: a module
/// `event_admin` with `list` (its contract's `failing_events`), `resubmit` (`resubmit_event`) and
/// `resubmit_all` (`resubmit_events`), to register in its `public_routes`. Paths, operation ids and docs are
/// the module's own.
#[macro_export]
macro_rules! event_admin_routes {
    (
        contract: $contract:path,
        tag: $tag:literal,
        list: ($list_id:literal, $list_path:literal, $list_doc:literal),
        resubmit: ($resubmit_id:literal, $resubmit_path:literal, $resubmit_doc:literal),
        resubmit_all: ($all_id:literal, $all_path:literal, $all_doc:literal) $(,)?
    ) => {
        /// The admin routes over this module's outbox: failing deliveries, and resubmitting one or many.
        pub mod event_admin {
            use $crate::__private::actix_web::{HttpResponse, get, post, web};
            use $crate::events::{FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
            use $crate::http::{HttpProblem, PublicContext};
            use $crate::{Page, Problem};

            #[doc = $list_doc]
            #[utoipa::path(
                tag = $tag,
                operation_id = $list_id,
                params(FailingQuery),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "A page of failing events", body = Page<PendingEvent>),
                    (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
                )
            )]
            #[get($list_path)]
            pub async fn list(
                ctx: PublicContext,
                api: web::Data<dyn $contract>,
                query: web::Query<FailingQuery>,
            ) -> Result<HttpResponse, HttpProblem> {
                let page = api.failing_events(&ctx.0, query.into_inner()).await?;
                Ok(HttpResponse::Ok().json(page))
            }

            #[doc = $resubmit_doc]
            #[utoipa::path(
                tag = $tag,
                operation_id = $resubmit_id,
                params(("id" = uuid::Uuid, Path, description = "The event id")),
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "The event, due now", body = PendingEvent),
                    (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
                    (status = 404, description = "`event_not_found`: no undelivered event has this id", body = Problem, content_type = "application/problem+json"),
                )
            )]
            #[post($resubmit_path)]
            pub async fn resubmit(
                ctx: PublicContext,
                api: web::Data<dyn $contract>,
                id: web::Path<uuid::Uuid>,
            ) -> Result<HttpResponse, HttpProblem> {
                let event = api.resubmit_event(&ctx.0, id.into_inner()).await?;
                Ok(HttpResponse::Ok().json(event))
            }

            #[doc = $all_doc]
            #[utoipa::path(
                tag = $tag,
                operation_id = $all_id,
                request_body = ResubmitEvents,
                security(("bearer" = [])),
                responses(
                    (status = 200, description = "How many events were made due now", body = Resubmitted),
                    (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
                    (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
                    (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
                    (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
                    (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
                    (status = 422, description = "A field of the wrong type (`event_type` not a string, `parked_only` not a boolean)", body = Problem, content_type = "application/problem+json"),
                )
            )]
            #[post($all_path)]
            pub async fn resubmit_all(
                ctx: PublicContext,
                api: web::Data<dyn $contract>,
                body: web::Json<$crate::__private::serde_json::Map<String, $crate::__private::serde_json::Value>>,
            ) -> Result<HttpResponse, HttpProblem> {
                let filter: ResubmitEvents = $crate::http::from_object(body.into_inner())?;
                let resubmitted = api.resubmit_events(&ctx.0, filter).await?;
                Ok(HttpResponse::Ok().json(resubmitted))
            }
        }
    };
}
