//! Ordering's HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use shop_kernel::http::{HttpProblem, PublicContext, accepted, created};
use shop_kernel::{Page, Problem};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::{NewOrder, Order, OrderQuery, OrderStatus, OrderingApi};

type Api = web::Data<dyn OrderingApi>;

/// Places an order for the signed-in user. Honours `Idempotency-Key`.
#[utoipa::path(
    tag = "ordering",
    operation_id = "place_order",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for the same key and body: 1-255 visible ASCII characters", pattern = "^[ -~]*[!-~][ -~]*$", max_length = 255),
    ),
    request_body = NewOrder,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The order, `confirmed` (or, replayed, as it is now); `Location` names it", body = Order),
        (status = 202, description = "The order is `pending`: a module it needs is unavailable, and it will be confirmed or failed in the background; follow `Location`", body = Order),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`insufficient_funds`: the wallet holds less than the total", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_stock` (names the `sku`); `order_failed` (names the `order_id` and its `failure`: the reservation expired, or a module stayed unavailable past the give-up time; nothing is held or charged); or `idempotency_key_in_use`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No lines, more than 50, a quantity outside 1-100, a duplicate, unknown or inactive product, or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The catalog (or ordering itself) is unavailable before the order is written: nothing was placed; retry, with the same `Idempotency-Key` to be safe", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/orders")]
async fn place_order(
    ctx: PublicContext,
    api: Api,
    req: HttpRequest,
    body: web::Json<NewOrder>,
) -> Result<HttpResponse, HttpProblem> {
    let key = shop_kernel::http::idempotency_key(&req)?;
    let order = api.place_order(&ctx.0, body.into_inner(), key).await?;
    let location = format!("/api/v1/orders/{}", order.id);
    Ok(if order.status == OrderStatus::Pending {
        accepted(location, &order)
    } else {
        created(location, &order)
    })
}

/// The signed-in user's orders, newest first.
#[utoipa::path(
    tag = "ordering",
    operation_id = "list_orders",
    params(OrderQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders", body = Page<Order>),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/orders")]
async fn list_orders(
    ctx: PublicContext,
    api: Api,
    query: web::Query<OrderQuery>,
) -> Result<HttpResponse, HttpProblem> {
    let page = api.list_orders(&ctx.0, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One order (its owner or an admin).
#[utoipa::path(
    tag = "ordering",
    operation_id = "get_order",
    params(("id" = Uuid, Path, description = "The order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not yours", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/orders/{id}")]
async fn get_order(
    ctx: PublicContext,
    api: Api,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, HttpProblem> {
    let order = api.get_order(&ctx.0, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(order))
}

/// Cancels a confirmed order: the charge is refunded and the stock returned (its owner or an admin).
#[utoipa::path(
    tag = "ordering",
    operation_id = "cancel_order",
    params(("id" = Uuid, Path, description = "The order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order, `cancelled`", body = Order),
        (status = 400, description = "Malformed id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_cancellable`: the order is pending or failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A module the cancellation needs is unavailable; it completes in the background", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/orders/{id}/cancel")]
async fn cancel_order(
    ctx: PublicContext,
    api: Api,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, HttpProblem> {
    let order = api.cancel_order(&ctx.0, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(order))
}

shop_kernel::event_admin_routes! {
    contract: crate::api::OrderingApi,
    tag: "ordering",
    list: (
        "list_failing_ordering_events",
        "/api/v1/admin/events/ordering/failing",
        "Ordering's events whose delivery keeps failing (admin), oldest first."
    ),
    resubmit: (
        "resubmit_ordering_event",
        "/api/v1/admin/events/ordering/{id}/resubmit",
        "Makes an undelivered ordering event due again now (admin)."
    ),
    resubmit_all: (
        "resubmit_ordering_events",
        "/api/v1/admin/events/ordering/resubmit",
        "Makes ordering's undelivered events that failed due again now (admin): all, those of one type, or only the parked ones."
    ),
}

/// Registers the public routes (needs `web::Data<dyn OrderingApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(place_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(event_admin::list)
        .service(event_admin::resubmit)
        .service(event_admin::resubmit_all);
}

pub use crate::api::internal_routes;
