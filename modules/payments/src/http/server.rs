//! Payments' HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse, call
//! the trait and map the result.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use shop_kernel::http::{HttpProblem, PublicContext};
use shop_kernel::{Page, Problem};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::api::{NewCredit, PaymentsApi, Transaction, TransactionQuery, Wallet};

type Api = web::Data<dyn PaymentsApi>;

/// The signed-in user's wallet.
#[utoipa::path(
    tag = "payments",
    operation_id = "get_wallet",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The wallet", body = Wallet),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/wallet")]
async fn get_wallet(ctx: PublicContext, api: Api) -> Result<HttpResponse, HttpProblem> {
    let wallet = api.wallet(&ctx.0).await?;
    Ok(HttpResponse::Ok().json(wallet))
}

/// The signed-in user's transactions, newest first.
#[utoipa::path(
    tag = "payments",
    operation_id = "list_wallet_transactions",
    params(TransactionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of transactions", body = Page<Transaction>),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/wallet/transactions")]
async fn list_wallet_transactions(
    ctx: PublicContext,
    api: Api,
    query: web::Query<TransactionQuery>,
) -> Result<HttpResponse, HttpProblem> {
    let page = api.transactions(&ctx.0, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Adds store credit to a user's wallet (admin). Honours `Idempotency-Key`.
#[utoipa::path(
    tag = "payments",
    operation_id = "credit_wallet",
    params(
        ("user_id" = Uuid, Path, description = "The wallet's owner"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first outcome for the same key and body: 1-255 visible ASCII characters", pattern = "^[ -~]*[!-~][ -~]*$", max_length = 255),
    ),
    request_body = NewCredit,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The credit transaction", body = Transaction),
        (status = 400, description = "Malformed JSON or user id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key is still running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a balance that would pass 10^15 together with the charges not yet refunded, or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/wallets/{user_id}/credits")]
async fn credit_wallet(
    ctx: PublicContext,
    api: Api,
    req: HttpRequest,
    user_id: web::Path<Uuid>,
    body: web::Json<NewCredit>,
) -> Result<HttpResponse, HttpProblem> {
    let key = shop_kernel::http::idempotency_key(&req)?;
    let transaction = api
        .credit(&ctx.0, user_id.into_inner(), body.into_inner(), key)
        .await?;
    Ok(HttpResponse::Created().json(transaction))
}

/// Registers the public routes (needs `web::Data<dyn PaymentsApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(get_wallet)
        .service(list_wallet_transactions)
        .service(credit_wallet);
}

pub use crate::api::internal_routes;
