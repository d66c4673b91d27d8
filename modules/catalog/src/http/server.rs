//! The catalog's HTTP face: the public API of api.md and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpResponse, get, patch, post, web};
use shop_kernel::Problem;
use shop_kernel::http::{
    HttpProblem, InternalContext, PublicContext, created, rpc_arguments, rpc_response,
};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::{CatalogApi, NewProduct, Product, ProductPatch, ProductQuery};

type Api = web::Data<dyn CatalogApi>;

/// A page of products, shaped as in every list of the API.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ProductPage {
    /// The products of this page.
    items: Vec<Product>,
    /// Cursor of the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Lists active products, optionally searching name and SKU.
#[utoipa::path(
    tag = "catalog",
    operation_id = "list_products",
    params(ProductQuery),
    responses(
        (status = 200, description = "A page of active products", body = ProductPage),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit, cursor or q", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/products")]
async fn list_products(
    ctx: PublicContext,
    api: Api,
    query: web::Query<ProductQuery>,
) -> Result<HttpResponse, HttpProblem> {
    let page = api.list_products(&ctx.0, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One product.
#[utoipa::path(
    tag = "catalog",
    operation_id = "get_product",
    params(("id" = Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/products/{id}")]
async fn get_product(
    ctx: PublicContext,
    api: Api,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, HttpProblem> {
    let product = api.get_product(&ctx.0, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Creates a product (admin).
#[utoipa::path(
    tag = "catalog",
    operation_id = "create_product",
    request_body = NewProduct,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names the product", body = Product),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sku_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/products")]
async fn create_product(
    ctx: PublicContext,
    api: Api,
    body: web::Json<NewProduct>,
) -> Result<HttpResponse, HttpProblem> {
    let product = api.create_product(&ctx.0, body.into_inner()).await?;
    Ok(created(
        format!("/api/v1/products/{}", product.id),
        &product,
    ))
}

/// Changes a product (admin).
#[utoipa::path(
    tag = "catalog",
    operation_id = "update_product",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed product", body = Product),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/api/v1/products/{id}")]
async fn update_product(
    ctx: PublicContext,
    api: Api,
    id: web::Path<Uuid>,
    body: web::Json<ProductPatch>,
) -> Result<HttpResponse, HttpProblem> {
    let product = api
        .update_product(&ctx.0, id.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(product))
}

/// Runs one operation of the catalog contract for another service (service credential required).
#[utoipa::path(
    tag = "catalog-internal",
    operation_id = "catalog_internal_call",
    description = "One endpoint per `CatalogApi` method; see the `x-operations` list of this document's info. \
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
#[post("/internal/catalog/{operation}")]
async fn internal_call(
    ctx: InternalContext,
    api: Api,
    operation: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpProblem> {
    let args = rpc_arguments(&body)?;
    rpc_response(crate::api::dispatch(api.get_ref(), &ctx.0, &operation, args).await)
}

/// Registers the public routes (needs `web::Data<dyn CatalogApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(list_products)
        .service(get_product)
        .service(create_product)
        .service(update_product);
}

/// Registers the `/internal` routes (needs the API and a `ServiceToken` in app data).
pub fn internal_routes(cfg: &mut ServiceConfig) {
    cfg.service(internal_call);
}
