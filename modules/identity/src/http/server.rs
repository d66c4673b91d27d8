//! Identity's HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpResponse, get, post, web};
use shop_kernel::Problem;
use shop_kernel::http::{HttpProblem, PublicContext, created};
use shop_kernel::jwks::Jwks;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::{AccessToken, Credentials, IdentityApi, NewUser, User};

type Api = web::Data<dyn IdentityApi>;

/// Registers a customer account.
#[utoipa::path(
    tag = "identity",
    operation_id = "register_user",
    request_body = NewUser,
    responses(
        (status = 201, description = "Registered; `Location` names the account", body = User),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, password (12–128) or display_name (1–100)", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/users")]
async fn register_user(
    ctx: PublicContext,
    api: Api,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, HttpProblem> {
    let user = api.register(&ctx.0, body.into_inner()).await?;
    Ok(created(format!("/api/v1/users/{}", user.id), &user))
}

/// Exchanges email and password for an access token.
#[utoipa::path(
    tag = "identity",
    operation_id = "issue_token",
    request_body = Credentials,
    responses(
        (status = 200, description = "An access token", body = AccessToken),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials` (unknown email and wrong password alike)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body does not have the expected shape", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/api/v1/auth/token")]
async fn issue_token(
    ctx: PublicContext,
    api: Api,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, HttpProblem> {
    let token = api.issue_token(&ctx.0, body.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(token))
}

/// The signed-in user's account.
#[utoipa::path(
    tag = "identity",
    operation_id = "get_current_user",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/users/me")]
async fn get_current_user(ctx: PublicContext, api: Api) -> Result<HttpResponse, HttpProblem> {
    let user = api.me(&ctx.0).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// A user's account: the user themself or an admin; anyone else gets 404.
#[utoipa::path(
    tag = "identity",
    operation_id = "get_user",
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or not yours to see", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/users/{id}")]
async fn get_user(
    ctx: PublicContext,
    api: Api,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, HttpProblem> {
    let user = api.get_user(&ctx.0, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// The public keys that verify access tokens.
#[utoipa::path(
    tag = "identity",
    operation_id = "get_jwks",
    responses((status = 200, description = "The JSON Web Key Set", body = Jwks))
)]
#[get("/.well-known/jwks.json")]
async fn get_jwks(ctx: PublicContext, api: Api) -> Result<HttpResponse, HttpProblem> {
    let jwks = api.jwks(&ctx.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(jwks))
}

shop_kernel::event_admin_routes! {
    contract: crate::api::IdentityApi,
    tag: "identity",
    list: (
        "list_failing_identity_events",
        "/api/v1/admin/events/identity/failing",
        "Identity's events whose delivery keeps failing (admin), oldest first."
    ),
    resubmit: (
        "resubmit_identity_event",
        "/api/v1/admin/events/identity/{id}/resubmit",
        "Makes an undelivered identity event due again now (admin)."
    ),
    resubmit_all: (
        "resubmit_identity_events",
        "/api/v1/admin/events/identity/resubmit",
        "Makes identity's undelivered events that failed due again now (admin): all, those of one type, or only the parked ones."
    ),
}

/// Registers the public routes (needs `web::Data<dyn IdentityApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(register_user)
        .service(issue_token)
        .service(get_current_user)
        .service(get_user)
        .service(get_jwks)
        .service(event_admin::list)
        .service(event_admin::resubmit)
        .service(event_admin::resubmit_all);
}

pub use crate::api::internal_routes;
