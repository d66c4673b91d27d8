//! Inventory's HTTP face: the public API of api.md and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use shop_kernel::Problem;
use shop_kernel::http::{HttpProblem, InternalContext, PublicContext, rpc_arguments, rpc_response};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::{Adjustment, InventoryApi, SetStock, StockLevels};

type Api = web::Data<dyn InventoryApi>;

/// Stock levels of a SKU.
#[utoipa::path(
    tag = "inventory",
    operation_id = "get_stock",
    params(("sku" = String, Path, description = "The SKU", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "Stock levels", body = StockLevels),
        (status = 404, description = "The SKU was never stocked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed SKU", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/inventory/{sku}")]
async fn get_stock(
    ctx: PublicContext,
    api: Api,
    sku: web::Path<String>,
) -> Result<HttpResponse, HttpProblem> {
    let levels = api.get_stock(&ctx.0, sku.into_inner()).await?;
    Ok(HttpResponse::Ok().json(levels))
}

/// Sets the units on hand (admin).
#[utoipa::path(
    tag = "inventory",
    operation_id = "set_stock",
    params(("sku" = String, Path, description = "The SKU", pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body = SetStock,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New stock levels", body = StockLevels),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`below_reserved`: on_hand < reserved", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/api/v1/inventory/{sku}")]
async fn set_stock(
    ctx: PublicContext,
    api: Api,
    sku: web::Path<String>,
    body: web::Json<SetStock>,
) -> Result<HttpResponse, HttpProblem> {
    let levels = api
        .set_stock(&ctx.0, sku.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(levels))
}

/// Adds or removes units with a reason (admin). Honours `Idempotency-Key`.
#[utoipa::path(
    tag = "inventory",
    operation_id = "adjust_stock",
    params(
        ("sku" = String, Path, description = "The SKU", pattern = "^[A-Za-z0-9._-]{1,64}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for the same key and body (at most 255 characters)"),
    ),
    request_body = Adjustment,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New stock levels", body = StockLevels),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The SKU was never stocked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_stock`: available would go negative", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/inventory/{sku}/adjustments")]
async fn adjust_stock(
    ctx: PublicContext,
    api: Api,
    req: HttpRequest,
    sku: web::Path<String>,
    body: web::Json<Adjustment>,
) -> Result<HttpResponse, HttpProblem> {
    let key = shop_kernel::http::idempotency_key(&req)?;
    let levels = api
        .adjust_stock(&ctx.0, sku.into_inner(), body.into_inner(), key)
        .await?;
    Ok(HttpResponse::Ok().json(levels))
}

/// Runs one operation of the inventory contract for another service (service credential required).
#[utoipa::path(
    tag = "inventory-internal",
    operation_id = "inventory_internal_call",
    description = "One endpoint per `InventoryApi` method; see the `x-operations` list of this document's info. \
                   The body is a JSON object of the method's arguments by name; the answer is its result, or a \
                   problem document carrying the module error.",
    params(("operation" = String, Path, description = "The trait method's name")),
    request_body(content = Object, description = "The method's arguments by name"),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The method's result", body = Object),
        (status = 400, description = "Arguments do not match the method", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing service credential or invalid user token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such operation, or a not-found module error", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A module error", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A module validation error", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/internal/inventory/{operation}")]
async fn internal_call(
    ctx: InternalContext,
    api: Api,
    operation: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpProblem> {
    let args = rpc_arguments(&body)?;
    rpc_response(crate::api::dispatch(api.get_ref(), &ctx.0, &operation, args).await)
}

/// Registers the public routes (needs `web::Data<dyn InventoryApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(get_stock)
        .service(set_stock)
        .service(adjust_stock);
}

/// Registers the `/internal` routes (needs the API and a `ServiceToken` in app data).
pub fn internal_routes(cfg: &mut ServiceConfig) {
    cfg.service(internal_call);
}
