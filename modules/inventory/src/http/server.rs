//! Inventory's HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use shop_kernel::Problem;
use shop_kernel::http::{HttpProblem, PublicContext};
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
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for the same key and body: 1-255 visible ASCII characters", pattern = "^[ -~]*[!-~][ -~]*$", max_length = 255),
    ),
    request_body = Adjustment,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New stock levels", body = StockLevels),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The SKU was never stocked", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`insufficient_stock`: available would go negative; `idempotency_key_in_use`: the first request with this key is still running", body = Problem, content_type = "application/problem+json"),
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

/// Registers the public routes (needs `web::Data<dyn InventoryApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(get_stock)
        .service(set_stock)
        .service(adjust_stock);
}

pub use crate::api::internal_routes;
