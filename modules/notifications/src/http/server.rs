//! Notifications' HTTP face: the public API (`openapi/shop.json`) and the `/internal` operations. Handlers only parse,
//! call the trait and map the result.

use actix_web::{HttpResponse, get, web};
use shop_kernel::http::{HttpProblem, PublicContext};
use shop_kernel::{Page, Problem};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::{Notification, NotificationQuery, NotificationsApi};

type Api = web::Data<dyn NotificationsApi>;

/// The signed-in user's messages, newest first.
#[utoipa::path(
    tag = "notifications",
    operation_id = "list_notifications",
    params(NotificationQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages", body = Page<Notification>),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/api/v1/notifications")]
async fn list_notifications(
    ctx: PublicContext,
    api: Api,
    query: web::Query<NotificationQuery>,
) -> Result<HttpResponse, HttpProblem> {
    let page = api.list_notifications(&ctx.0, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Registers the public routes (needs `web::Data<dyn NotificationsApi>` in app data).
pub fn public_routes(cfg: &mut ServiceConfig) {
    cfg.service(list_notifications);
}

pub use crate::api::internal_routes;
