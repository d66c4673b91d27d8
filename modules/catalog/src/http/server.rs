//! The catalog's HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpResponse, get, patch, post, web};
use shop_kernel::Problem;
use shop_kernel::http::{HttpProblem, PublicContext, created};
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

/// Lists active products, or searches them (words of name and description, anywhere in the SKU), best first.
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

/// Registers the public routes (needs `web::Data<dyn CatalogApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(list_products)
        .service(get_product)
        .service(create_product)
        .service(update_product);
}

pub use crate::api::internal_routes;
