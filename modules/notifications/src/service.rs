//! Notifications' business rules: each event it takes makes one message, recorded in the transaction that
//! marks the event handled, so a redelivery changes nothing; a recorded message with a recipient is mailed
//! by [`send_due`](NotificationsService::send_due) when SMTP is configured.

use std::fmt;
use std::sync::Arc;

use shop_identity::{IdentityApi, IdentityError, User, UserRegistered};
use shop_kernel::db::{self, Database, write_transaction};
use shop_kernel::events::inbox::Inbox;
use shop_kernel::events::{Event, require_publisher};
use shop_kernel::page::checked_id_page;
use shop_kernel::{FieldError, Money, Page, RequestContext};
use shop_ordering::{OrderCancelled, OrderConfirmed};
use uuid::Uuid;

use crate::api::{
    Handled, MODULE, Notification, NotificationKind, NotificationQuery, NotificationsApi,
};
use crate::error::NotificationsError;
use crate::mailer::Mailer;
use crate::store;

/// Where and as whom to send mail.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or `smtps://host:port`
    /// (implicit TLS); credentials as `smtp://user:password@host:port`.
    pub url: String,
    /// The `From` mailbox, e.g. `shop <noreply@shop.example>`.
    pub from: String,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry the SMTP password.
        f.debug_struct("SmtpConfig")
            .field("url", &db::redact(&self.url))
            .field("from", &self.from)
            .finish()
    }
}

/// Settings of the notifications implementation.
#[derive(Debug, Clone, Default)]
pub struct NotificationsConfig {
    /// The mail server; `None`: messages are recorded, never mailed.
    pub smtp: Option<SmtpConfig>,
}

/// The local implementation of [`NotificationsApi`].
#[derive(Clone)]
pub struct NotificationsService {
    pub(crate) db: Database,
    /// Tells an order's buyer's email.
    identity: Arc<dyn IdentityApi>,
    pub(crate) mailer: Option<Arc<Mailer>>,
}

type Outcome<T> = Result<T, NotificationsError>;

/// Which events were applied, written in the transaction that records each one's message.
const INBOX: Inbox = Inbox::new("notifications_inbox");

/// A message an event calls for, before it is recorded.
struct Draft {
    user_id: Uuid,
    kind: NotificationKind,
    recipient: Option<String>,
    subject: String,
    body: String,
}

fn parse_id(id: &str) -> Outcome<Uuid> {
    Uuid::parse_str(id)
        .map_err(|e| NotificationsError::Internal(format!("bad stored id {id}: {e}")))
}

/// `1234 EUR` minor units as `12.34 EUR`.
fn format_money(money: &Money) -> String {
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    let minor = money.amount_minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        minor / 100,
        minor % 100,
        money.currency
    )
}

fn greeting(user: Option<&User>) -> String {
    match user {
        Some(user) => format!("Hello {},", user.display_name),
        None => "Hello,".to_string(),
    }
}

fn welcome(event: &UserRegistered) -> Draft {
    Draft {
        user_id: event.user_id,
        kind: NotificationKind::Welcome,
        recipient: Some(event.email.clone()),
        subject: format!("Welcome to the shop, {}", event.display_name),
        body: format!(
            "Hello {},\n\n\
             welcome to the shop! Your account {} is ready: sign in with this email address to browse \
             the catalog and place orders.\n\n\
             The shop\n",
            event.display_name, event.email
        ),
    }
}

fn order_confirmed(event: &OrderConfirmed, user: Option<&User>) -> Draft {
    let lines: String = event
        .lines
        .iter()
        .map(|line| {
            format!(
                "  {} × {} ({}): {}\n",
                line.quantity,
                line.name,
                line.sku,
                format_money(&line.line_total)
            )
        })
        .collect();
    Draft {
        user_id: event.user_id,
        kind: NotificationKind::OrderConfirmed,
        recipient: user.map(|u| u.email.clone()),
        subject: format!("Your order {} is confirmed", event.order_id),
        body: format!(
            "{}\n\n\
             thank you for your order {}. It is paid and its items are set aside for you.\n\n\
             {lines}\n\
             Total: {}\n\n\
             The shop\n",
            greeting(user),
            event.order_id,
            format_money(&event.total)
        ),
    }
}

fn order_cancelled(event: &OrderCancelled, user: Option<&User>) -> Draft {
    Draft {
        user_id: event.user_id,
        kind: NotificationKind::OrderCancelled,
        recipient: user.map(|u| u.email.clone()),
        subject: format!("Your order {} is cancelled", event.order_id),
        body: format!(
            "{}\n\n\
             your order {} is cancelled. {} was refunded to your shop wallet.\n\n\
             The shop\n",
            greeting(user),
            event.order_id,
            format_money(&event.total)
        ),
    }
}

fn decoded<T>(payload: Option<Result<T, serde_json::Error>>) -> Outcome<Option<T>> {
    payload.transpose().map_err(|e| {
        NotificationsError::Validation(vec![FieldError::new(
            "event.payload",
            format!("does not match the event's type and version: {e}"),
        )])
    })
}

impl NotificationsService {
    /// Notifications on `db` (its migrations already applied), asking `identity` for the buyers' emails;
    /// fails when the SMTP settings cannot be used (an unparsable URL or `From` mailbox).
    pub fn new(
        db: Database,
        config: NotificationsConfig,
        identity: Arc<dyn IdentityApi>,
    ) -> Result<Self, String> {
        let mailer = config
            .smtp
            .as_ref()
            .map(Mailer::new)
            .transpose()?
            .map(Arc::new);
        Ok(NotificationsService {
            db,
            identity,
            mailer,
        })
    }

    /// Forgets the ids of events handled more than `retention` ago (longer than any redelivery); returns
    /// how many.
    pub async fn purge_inbox(&self, retention: std::time::Duration) -> Outcome<usize> {
        self.db
            .run(move |conn| {
                let cutoff = shop_kernel::db::now()
                    - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
                INBOX.purge(conn, cutoff).map_err(NotificationsError::from)
            })
            .await
    }

    /// The buyer an order event names: `None` when identity does not know them (the message is then
    /// recorded without a recipient, never mailed).
    async fn buyer(&self, ctx: &RequestContext, user_id: Uuid) -> Outcome<Option<User>> {
        match self
            .identity
            .get_user(&ctx.as_module(MODULE), user_id)
            .await
        {
            Ok(user) => Ok(Some(user)),
            Err(IdentityError::NotFound) => Ok(None),
            Err(IdentityError::Unavailable(detail)) => Err(NotificationsError::Unavailable(detail)),
            Err(other) => Err(NotificationsError::Internal(format!("identity: {other}"))),
        }
    }

    /// The message `event` calls for; `None` for an event notifications does not take.
    async fn draft(&self, ctx: &RequestContext, event: &Event) -> Outcome<Option<Draft>> {
        if let Some(registered) = decoded(event.payload::<UserRegistered>())? {
            return Ok(Some(welcome(&registered)));
        }
        if let Some(confirmed) = decoded(event.payload::<OrderConfirmed>())? {
            let buyer = self.buyer(ctx, confirmed.user_id).await?;
            return Ok(Some(order_confirmed(&confirmed, buyer.as_ref())));
        }
        if let Some(cancelled) = decoded(event.payload::<OrderCancelled>())? {
            let buyer = self.buyer(ctx, cancelled.user_id).await?;
            return Ok(Some(order_cancelled(&cancelled, buyer.as_ref())));
        }
        Ok(None)
    }

    fn notification(row: store::MessageRow) -> Outcome<Notification> {
        let (id, kind, subject, body, created_at, sent_at) = row;
        Ok(Notification {
            id: parse_id(&id)?,
            kind: NotificationKind::parse(&kind)
                .ok_or_else(|| NotificationsError::Internal(format!("bad stored kind {kind}")))?,
            subject,
            body,
            created_at: created_at.and_utc(),
            sent_at: sent_at.map(|at| at.and_utc()),
        })
    }
}

#[async_trait::async_trait]
impl NotificationsApi for NotificationsService {
    async fn list_notifications(
        &self,
        ctx: &RequestContext,
        query: NotificationQuery,
    ) -> Outcome<Page<Notification>> {
        let user = ctx.require_user()?.id.to_string();
        let mut errors = Vec::new();
        let (limit, before) = checked_id_page(query.limit, query.cursor.as_deref(), &mut errors);
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(NotificationsError::Validation(errors));
        };
        let rows = self
            .db
            .run(move |conn| {
                store::messages(conn, &user, before.as_deref(), i64::from(limit) + 1)
                    .map_err(NotificationsError::from)
            })
            .await?;
        let items = rows
            .into_iter()
            .map(Self::notification)
            .collect::<Outcome<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |n| n.id.simple().to_string()))
    }

    async fn handle_event(&self, ctx: &RequestContext, event: Event) -> Outcome<Handled> {
        // Identity may hand over identity's events only, ordering ordering's: the contract admits both
        // modules, and a credential of one must not forge the other's announcements.
        require_publisher(ctx, &event)?;
        let skipped = Handled { applied: false };
        let Some(draft) = self.draft(ctx, &event).await? else {
            return Ok(skipped);
        };
        let mailed = self.mailer.is_some() && draft.recipient.is_some();
        self.db
            .run(move |conn| {
                write_transaction(conn, |c| {
                    let now = db::now();
                    // The inbox row and the message commit together: a concurrent delivery of the same
                    // event waits on the inbox row, then finds it handled.
                    if !INBOX.first_time(c, &event, now)? {
                        return Ok(skipped);
                    }
                    store::insert_message(
                        c,
                        &store::NewMessage {
                            id: &Uuid::now_v7().to_string(),
                            user_id: &draft.user_id.to_string(),
                            event_id: &event.id.to_string(),
                            kind: draft.kind.as_str(),
                            recipient: draft.recipient.as_deref(),
                            subject: &draft.subject,
                            body: &draft.body,
                            next_attempt_at: mailed.then_some(now),
                        },
                        now,
                    )?;
                    Ok(Handled { applied: true })
                })
            })
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use shop_kernel::events::{FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
    use shop_kernel::jwks::Jwks;
    use shop_kernel::{Caller, Role, UserCaller};
    use shop_ordering::OrderEventLine;

    pub type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Identity as the tests need it: one known user, or an outage.
    pub struct FakeIdentity {
        pub user: User,
        pub down: bool,
    }

    #[async_trait::async_trait]
    impl IdentityApi for FakeIdentity {
        async fn register(
            &self,
            _: &RequestContext,
            _: shop_identity::NewUser,
        ) -> Result<User, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn issue_token(
            &self,
            _: &RequestContext,
            _: shop_identity::Credentials,
        ) -> Result<shop_identity::AccessToken, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn me(&self, _: &RequestContext) -> Result<User, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn get_user(&self, ctx: &RequestContext, id: Uuid) -> Result<User, IdentityError> {
            assert!(ctx.origin.is_module(MODULE), "asks as notifications");
            if self.down {
                return Err(IdentityError::Unavailable("identity is down".into()));
            }
            if id == self.user.id {
                Ok(self.user.clone())
            } else {
                Err(IdentityError::NotFound)
            }
        }
        async fn jwks(&self, _: &RequestContext) -> Result<Jwks, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn ensure_admin(
            &self,
            _: &RequestContext,
            _: String,
            _: String,
        ) -> Result<User, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn failing_events(
            &self,
            _: &RequestContext,
            _: FailingQuery,
        ) -> Result<Page<PendingEvent>, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn resubmit_event(
            &self,
            _: &RequestContext,
            _: Uuid,
        ) -> Result<PendingEvent, IdentityError> {
            Err(IdentityError::Forbidden)
        }
        async fn resubmit_events(
            &self,
            _: &RequestContext,
            _: ResubmitEvents,
        ) -> Result<Resubmitted, IdentityError> {
            Err(IdentityError::Forbidden)
        }
    }

    /// A customer identity knows.
    pub fn customer() -> User {
        serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(),
            "email": "ada@example.com",
            "display_name": "Ada",
            "role": "customer",
            "created_at": chrono::Utc::now(),
        }))
        .unwrap_or_else(|e| panic!("a user: {e}"))
    }

    /// A fresh SQLite database with notifications' tables, and its directory (remove it when done).
    pub fn database() -> Result<(Database, std::path::PathBuf), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("shop-notifications-{}", Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 4)?;
        db.get()?.batch_execute(include_str!(
            "../../../migrations/notifications/sqlite/2026-11-26-000300_create_notifications/up.sql"
        ))?;
        Ok((db, dir))
    }

    pub fn service(
        db: &Database,
        identity: FakeIdentity,
        smtp: Option<SmtpConfig>,
    ) -> Result<NotificationsService, String> {
        NotificationsService::new(db.clone(), NotificationsConfig { smtp }, Arc::new(identity))
    }

    /// The context ordering's relay delivers with.
    pub fn from_ordering() -> RequestContext {
        RequestContext::system().as_module("ordering")
    }

    pub fn signed_in(user: &User) -> RequestContext {
        RequestContext {
            caller: Caller::User(UserCaller {
                id: user.id,
                role: Role::Customer,
            }),
            ..Default::default()
        }
    }

    pub fn confirmed(user_id: Uuid) -> Event {
        let eur = |n| Money::new(n, "EUR");
        let payload = OrderConfirmed {
            order_id: Uuid::now_v7(),
            user_id,
            lines: vec![
                OrderEventLine {
                    product_id: Uuid::now_v7(),
                    sku: "MUG-1".into(),
                    name: "Mug".into(),
                    quantity: 2,
                    line_total: eur(1998),
                },
                OrderEventLine {
                    product_id: Uuid::now_v7(),
                    sku: "TEA-1".into(),
                    name: "Tea".into(),
                    quantity: 1,
                    line_total: eur(505),
                },
            ],
            total: eur(2503),
        };
        Event::new(&payload, chrono::Utc::now()).unwrap_or_else(|e| panic!("an event: {e}"))
    }

    #[tokio::test]
    async fn a_redelivered_event_makes_one_message() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, None)?;
        let event = confirmed(user.id);
        let first = notifications
            .handle_event(&from_ordering(), event.clone())
            .await?;
        assert_eq!(first, Handled { applied: true });
        let again = notifications
            .handle_event(&from_ordering(), event.clone())
            .await?;
        assert_eq!(again, Handled { applied: false });
        // Two deliveries at once (two relays): still one message.
        let ctx = from_ordering();
        let (a, b) = tokio::join!(
            notifications.handle_event(&ctx, event.clone()),
            notifications.handle_event(&ctx, event.clone()),
        );
        assert_eq!((a?.applied, b?.applied), (false, false));

        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert_eq!(page.items.len(), 1);
        let message = &page.items[0];
        assert_eq!(message.kind, NotificationKind::OrderConfirmed);
        assert!(
            message.subject.contains("is confirmed"),
            "{}",
            message.subject
        );
        assert!(message.body.starts_with("Hello Ada,"), "{}", message.body);
        assert!(
            message.body.contains("2 × Mug (MUG-1): 19.98 EUR"),
            "{}",
            message.body
        );
        assert!(
            message.body.contains("1 × Tea (TEA-1): 5.05 EUR"),
            "{}",
            message.body
        );
        assert!(
            message.body.contains("Total: 25.03 EUR"),
            "{}",
            message.body
        );
        assert_eq!(message.sent_at, None, "no mail server: recorded only");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_first_deliveries_make_one_message() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, None)?;
        let event = confirmed(user.id);
        let deliveries: Vec<_> = (0..4)
            .map(|_| {
                let n = notifications.clone();
                let e = event.clone();
                tokio::spawn(async move { n.handle_event(&from_ordering(), e).await })
            })
            .collect();
        let mut applied = 0;
        for delivery in deliveries {
            applied += usize::from(delivery.await??.applied);
        }
        assert_eq!(applied, 1);
        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert_eq!(page.items.len(), 1);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_module_cannot_hand_over_another_modules_events() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, None)?;
        let event = confirmed(user.id);
        let from_identity = RequestContext::system().as_module("identity");
        for forger in [from_identity, RequestContext::system()] {
            assert_eq!(
                notifications.handle_event(&forger, event.clone()).await,
                Err(NotificationsError::Forbidden),
                "{:?}",
                forger.origin
            );
        }
        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert!(page.items.is_empty(), "nothing recorded");
        assert!(
            notifications
                .handle_event(&from_ordering(), event)
                .await?
                .applied,
            "ordering's own event, from ordering"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_event_type_is_ignored_and_a_bad_payload_is_refused() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, None)?;
        let mut unknown = confirmed(user.id);
        unknown.event_type = "ordering.order_shipped".into();
        let handled = notifications
            .handle_event(&from_ordering(), unknown.clone())
            .await?;
        assert_eq!(handled, Handled { applied: false });
        let mut newer = confirmed(user.id);
        newer.version = 2;
        let handled = notifications.handle_event(&from_ordering(), newer).await?;
        assert_eq!(
            handled,
            Handled { applied: false },
            "a version it does not know"
        );
        let seen = db
            .run(move |c| {
                store::handled(c, &unknown.id.to_string()).map_err(NotificationsError::from)
            })
            .await?;
        assert!(!seen, "an ignored event is not written to the inbox");

        let mut bad = confirmed(user.id);
        bad.payload = serde_json::json!({"order_id": "not a uuid"});
        let refused = notifications.handle_event(&from_ordering(), bad).await;
        assert!(
            matches!(refused, Err(NotificationsError::Validation(_))),
            "{refused:?}"
        );

        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert!(page.items.is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn buyers_identity_does_not_know_are_recorded_unmailed_and_an_outage_is_retried()
    -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let down = service(
            &db,
            FakeIdentity {
                user: user.clone(),
                down: true,
            },
            None,
        )?;
        let event = confirmed(user.id);
        let outage = down.handle_event(&from_ordering(), event.clone()).await;
        assert!(
            matches!(outage, Err(NotificationsError::Unavailable(_))),
            "{outage:?}"
        );

        let smtp = SmtpConfig {
            url: "smtp://127.0.0.1:1".into(),
            from: "shop <noreply@shop.localhost>".into(),
        };
        let up = service(
            &db,
            FakeIdentity {
                user: customer(),
                down: false,
            },
            Some(smtp),
        )?;
        // The retry after the outage: identity now answers, but does not know this buyer.
        assert!(
            up.handle_event(&from_ordering(), event.clone())
                .await?
                .applied
        );
        let page = up
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert_eq!(page.items.len(), 1);
        assert!(page.items[0].body.starts_with("Hello,"));
        assert_eq!(up.send_due().await?, 0, "no recipient: nothing to mail");
        let id = page.items[0].id.to_string();
        let (attempts, next, sent, _) = db
            .run(move |c| store::delivery_state(c, &id).map_err(NotificationsError::from))
            .await?;
        assert_eq!((attempts, next, sent), (0, None, None));
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn the_welcome_goes_to_the_registered_email_and_pages_go_newest_first() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            // The welcome needs no lookup: the event carries the email.
            down: true,
        };
        let notifications = service(&db, identity, None)?;
        let registered = UserRegistered {
            user_id: user.id,
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
        };
        let welcome = Event::new(&registered, chrono::Utc::now())?;
        let from_identity = RequestContext::system().as_module("identity");
        assert!(
            notifications
                .handle_event(&from_identity, welcome)
                .await?
                .applied
        );
        let cancelled = OrderCancelled {
            order_id: Uuid::now_v7(),
            user_id: user.id,
            total: Money::new(700, "EUR"),
        };
        let outage = notifications
            .handle_event(
                &from_ordering(),
                Event::new(&cancelled, chrono::Utc::now())?,
            )
            .await;
        assert!(matches!(outage, Err(NotificationsError::Unavailable(_))));

        let me = signed_in(&user);
        let first = notifications
            .list_notifications(
                &me,
                NotificationQuery {
                    limit: Some(1),
                    cursor: None,
                },
            )
            .await?;
        assert_eq!(first.items.len(), 1);
        assert_eq!(first.items[0].kind, NotificationKind::Welcome);
        assert_eq!(first.items[0].subject, "Welcome to the shop, Ada");
        assert_eq!(first.next_cursor, None);

        let anonymous = notifications
            .list_notifications(&RequestContext::default(), NotificationQuery::default())
            .await;
        assert_eq!(anonymous, Err(NotificationsError::Unauthenticated));
        let bad = notifications
            .list_notifications(
                &me,
                NotificationQuery {
                    limit: Some(0),
                    cursor: Some("nope".into()),
                },
            )
            .await;
        assert!(matches!(bad, Err(NotificationsError::Validation(e)) if e.len() == 2));
        let others = notifications
            .list_notifications(&signed_in(&customer()), NotificationQuery::default())
            .await?;
        assert!(others.items.is_empty(), "another user sees none of them");
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn pages_follow_the_cursor() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, None)?;
        for _ in 0..3 {
            notifications
                .handle_event(&from_ordering(), confirmed(user.id))
                .await?;
        }
        let me = signed_in(&user);
        let first = notifications
            .list_notifications(
                &me,
                NotificationQuery {
                    limit: Some(2),
                    cursor: None,
                },
            )
            .await?;
        assert_eq!(first.items.len(), 2);
        assert!(first.items[0].id > first.items[1].id, "newest first");
        let rest = notifications
            .list_notifications(
                &me,
                NotificationQuery {
                    limit: Some(2),
                    cursor: first.next_cursor.clone(),
                },
            )
            .await?;
        assert_eq!(rest.items.len(), 1);
        assert!(rest.items[0].id < first.items[1].id);
        assert_eq!(rest.next_cursor, None);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn amounts_are_major_units_with_two_decimals() {
        assert_eq!(format_money(&Money::new(0, "EUR")), "0.00 EUR");
        assert_eq!(format_money(&Money::new(5, "EUR")), "0.05 EUR");
        assert_eq!(format_money(&Money::new(123_456, "USD")), "1234.56 USD");
    }

    #[test]
    fn an_unusable_smtp_setting_fails_the_constructor() -> Result<(), Box<dyn std::error::Error>> {
        let (db, dir) = database()?;
        let identity = || FakeIdentity {
            user: customer(),
            down: false,
        };
        let bad_url = SmtpConfig {
            url: "smtp//nowhere".into(),
            from: "shop <noreply@shop.localhost>".into(),
        };
        let err = service(&db, identity(), Some(bad_url))
            .err()
            .unwrap_or_default();
        assert!(err.contains("SHOP_SMTP_URL"), "{err}");
        let secret = SmtpConfig {
            url: "imap://user:hunter2@mail.example.com".into(),
            from: "shop <noreply@shop.localhost>".into(),
        };
        let err = service(&db, identity(), Some(secret))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("SHOP_SMTP_URL") && !err.contains("hunter2"),
            "{err}"
        );
        let bad_from = SmtpConfig {
            url: "smtp://127.0.0.1:25".into(),
            from: "not a mailbox".into(),
        };
        let err = service(&db, identity(), Some(bad_from))
            .err()
            .unwrap_or_default();
        assert!(err.contains("SHOP_SMTP_FROM"), "{err}");
        assert!(service(&db, identity(), None).is_ok());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
