//! The notifications module's entry: the messages made from identity's and ordering's events, which asks
//! identity for buyers' emails, and its mailer task when SMTP is configured.

use std::sync::Arc;

use shop_notifications::{NotificationsApi, NotificationsClient, Observed};

use shop_kernel::events::EventHandler;

use super::{Api, Local, ModuleDef};
use crate::app::StartupError;

crate::module_glue!(NotificationsApi, NotificationsClient, Observed);

/// Notifications.
pub const DEF: ModuleDef = ModuleDef {
    name: shop_notifications::MODULE,
    compiled_in: cfg!(feature = "notifications"),
    tables: shop_notifications::TABLES,
    operations: shop_notifications::OPERATIONS,
    migrations,
    public_routes: shop_notifications::http::server::public_routes,
    internal_routes: shop_notifications::http::server::internal_routes,
    local,
    client,
    observed,
    app_data,
    events: &[],
    outbox_table: None,
    subscribes_to: shop_notifications::SUBSCRIBES_TO,
    event_handler,
};

/// Notifications subscribes through its contract, local or remote alike.
fn event_handler(api: &Api) -> Option<Arc<dyn EventHandler>> {
    let typed = super::typed::<dyn NotificationsApi>(api)?;
    Some(Arc::new(shop_notifications::NotificationsEvents(typed)))
}

crate::module_migrations!(
    "notifications",
    "migrations/notifications/sqlite",
    "migrations/notifications/postgres"
);

#[cfg(feature = "notifications")]
fn local(local: &Local<'_>) -> Result<Api, StartupError> {
    use std::time::Duration;

    let smtp = local
        .config
        .smtp_url
        .clone()
        .map(|url| shop_notifications::SmtpConfig {
            url,
            from: local.config.smtp_from.clone(),
        });
    let mails = smtp.is_some();
    let identity = local
        .apis
        .get::<dyn shop_identity::IdentityApi>()
        .ok_or_else(|| {
            StartupError::Other("notifications needs identity, which is unreachable".into())
        })?;
    let service = Arc::new(
        shop_notifications::NotificationsService::new(
            local.db.clone(),
            shop_notifications::NotificationsConfig { smtp },
            identity,
        )
        .map_err(|e| StartupError::Other(format!("notifications: {e}")))?,
    );
    if let Some(tasks) = local.tasks {
        let purger = service.clone();
        let retention = local.config.event_retention;
        tasks.every(
            "notifications.inbox_purge",
            Duration::from_secs(600),
            move || {
                let purger = purger.clone();
                async move {
                    if let Err(e) = purger.purge_inbox(retention).await {
                        tracing::warn!(error = %e, "purging the notifications inbox failed");
                    }
                }
            },
        );
    }
    if let (true, Some(tasks)) = (mails, local.tasks) {
        let mailer = service.clone();
        tasks.every(
            "notifications.mailer",
            Duration::from_millis(500),
            move || {
                let mailer = mailer.clone();
                async move {
                    match mailer.send_due().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(sent = n, "notifications mailed"),
                        Err(e) => tracing::warn!(error = %e, "sending notifications failed"),
                    }
                }
            },
        );
    }
    Ok(super::api::<dyn NotificationsApi>(service))
}

#[cfg(not(feature = "notifications"))]
fn local(_: &Local<'_>) -> Result<Api, StartupError> {
    Err(StartupError::Other(
        "notifications is not compiled into this binary".into(),
    ))
}
