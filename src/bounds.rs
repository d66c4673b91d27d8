//! Server-side bounds on slow and stuck requests, so that neither a client nor a dependency can hold a
//! request open for as long as it likes: a body that does not arrive in time is the client's
//! `408 request_timeout`; a request worked on for too long is `503 unavailable` with `Retry-After`. The bound
//! on the request head is actix-web's own (`client_request_timeout`, set in `server.rs`).
//!
//! Cutting a request off drops its future, and with it whatever the handler was awaiting. That never leaves
//! a write half-done: database work runs in `Database::run` on the blocking pool and finishes its
//! transaction (commit or rollback) even when nobody awaits it any more; a checkout saga stores each step
//! before the next and is finished by the recovery task; an order's `Idempotency-Key` lives on the order, so
//! a retry finds it. The handler bound exceeds the remote-call budget by default, so that a call to a module
//! that does not answer ends in its own clean `503` first.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::{InternalError, PayloadError};
use actix_web::http::ConnectionType;
use actix_web::http::header::HeaderName;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, HttpResponse};
use futures_util::Stream;
use shop_kernel::Problem;

use crate::shutdown::Draining;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The bounds every request is held to, and whether the process is draining.
#[derive(Clone)]
pub struct Bounds {
    /// The whole body must have arrived this long after the head (`SHOP_HTTP_BODY_TIMEOUT_MS`).
    pub body: Duration,
    /// The response must be ready this long after the head (`SHOP_HTTP_HANDLER_TIMEOUT_MS`).
    pub handler: Duration,
    /// Set once the process is stopping: responses then close their connection, so that clients reconnect
    /// through the load balancer to an instance that stays.
    pub draining: Draining,
    /// `shop_http_requests_cut_off_total`: requests answered 503 at the handler bound. They are missing from
    /// `shop_http_requests_total`, whose middleware is dropped with the request.
    pub cut_off: prometheus::IntCounter,
}

impl Bounds {
    /// The counter of requests cut off at the handler bound, registered in `registry`.
    pub fn cut_off_counter(
        registry: &prometheus::Registry,
    ) -> Result<prometheus::IntCounter, prometheus::Error> {
        let counter = prometheus::IntCounter::new(
            "shop_http_requests_cut_off_total",
            "Requests answered 503 because they were not done within SHOP_HTTP_HANDLER_TIMEOUT_MS",
        )?;
        registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    }
}

/// The middleware: wraps a request's body in its deadline and its handling in the handler bound.
///
/// A request cut off at either bound may have lost its `HttpRequest` with the dropped handler (and actix lets
/// no middleware above the router keep a copy: routing needs it unshared), so such answers travel as an
/// error carrying the finished response; actix sends that response as it is.
pub fn bounded<S, B>(
    mut req: ServiceRequest,
    srv: &S,
    bounds: &Bounds,
) -> impl Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    // Requests without a body (most reads) carry no payload at all and pay for no timer.
    let body_late = match req.take_payload() {
        Payload::None => None,
        payload => {
            let late = Rc::new(Cell::new(false));
            let bounded: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(DeadlinePayload {
                    inner: payload,
                    deadline: Box::pin(tokio::time::sleep(bounds.body)),
                    late: late.clone(),
                });
            req.set_payload(Payload::from(bounded));
            Some(late)
        }
    };
    let (body_bound, handler_bound) = (bounds.body, bounds.handler);
    let (draining, cut_off) = (bounds.draining.clone(), bounds.cut_off.clone());
    let request_id = req.headers().get(&REQUEST_ID).cloned();
    let fut = srv.call(req);
    async move {
        let late = || body_late.as_ref().is_some_and(|late| late.get());
        let finished = |mut res: HttpResponse| {
            if let Some(id) = &request_id {
                res.headers_mut().insert(REQUEST_ID, id.clone());
            }
            actix_web::Error::from(InternalError::from_response("request bound passed", res))
        };
        let mut res = match tokio::time::timeout(handler_bound, fut).await {
            // Whatever the extractor made of a body cut off at its deadline (a 400, an error), it is the
            // client's 408.
            Ok(Ok(res)) if late() => {
                let (req, _) = res.into_parts();
                ServiceResponse::new(req, body_too_slow(body_bound)).map_into_right_body()
            }
            Ok(Err(_)) if late() => return Err(finished(body_too_slow(body_bound))),
            Ok(Ok(res)) => res.map_into_left_body(),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                cut_off.inc();
                tracing::warn!(
                    bound_ms = handler_bound.as_millis() as u64,
                    "request cut off at the handler bound (SHOP_HTTP_HANDLER_TIMEOUT_MS)"
                );
                return Err(finished(handler_too_slow(handler_bound)));
            }
        };
        if draining.is_draining() {
            res.response_mut()
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        Ok(res)
    }
}

fn body_too_slow(bound: Duration) -> HttpResponse {
    let mut res = shop_kernel::http::problem_response(&Problem::request_timeout(format!(
        "The request body did not arrive within {} ms.",
        bound.as_millis()
    )));
    // The rest of the body is never read: the connection cannot carry another request.
    res.head_mut().set_connection_type(ConnectionType::Close);
    res
}

fn handler_too_slow(bound: Duration) -> HttpResponse {
    let mut res = shop_kernel::http::problem_response(&Problem::unavailable(format!(
        "The request was not answered within {} ms.",
        bound.as_millis()
    )));
    // A body the handler had not finished reading may still be on its way.
    res.head_mut().set_connection_type(ConnectionType::Close);
    res
}

/// A request body that ends in an error once its deadline has passed with the body still incomplete.
struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    late: Rc<Cell<bool>>,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.late.get() {
            return Poll::Ready(None);
        }
        // What has arrived is handed out first: a handler that reads late (after checking a token, say)
        // still gets a body that came in time.
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.late.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}
