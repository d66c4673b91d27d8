//! The mailer: sends recorded messages over SMTP, at least once. Messages are claimed under a lease, so
//! several instances never send one at the same time; a failed send is retried with backoff, forever (the
//! mail server comes back); each mail carries `Message-ID: <event id@shop>`, so a receiver can drop the
//! duplicate a crash between sending and marking it sent may cause.

use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shop_kernel::db::{self, redact};

use crate::error::NotificationsError;
use crate::service::{NotificationsService, SmtpConfig};
use crate::store::{self, DueMessage};

/// Longest wait for the mail server, per SMTP command and for a whole send.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a claim holds a message; a mailer that dies mid-send leaves it due again after this.
const LEASE: Duration = Duration::from_secs(60);

/// Messages claimed per round.
const BATCH: i64 = 50;

/// The longest wait between two attempts at one message.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait after `attempts + 1` failures: 1 s, doubling, at most five minutes.
fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// Why a message was not sent.
enum Failure {
    /// Worth another attempt (the server is down, busy or refused for now).
    Retry(String),
    /// It can never be sent as stored (an address that does not parse): no more attempts.
    Never(String),
}

/// An SMTP transport and the sender's mailbox, built once at startup.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer `config` describes, or why it cannot be used (for a startup error naming the setting).
    pub(crate) fn new(config: &SmtpConfig) -> Result<Self, String> {
        let from: Mailbox = config.from.parse().map_err(|e| {
            format!(
                "SHOP_SMTP_FROM {:?} is not a mailbox like `shop <noreply@shop.example>`: {e}",
                config.from
            )
        })?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| {
                format!(
                    "SHOP_SMTP_URL {} is not usable (expected smtp://host:port, \
                     smtp://host:port?tls=required or smtps://host:port): {e}",
                    redact(&config.url)
                )
            })?
            .timeout(Some(TIMEOUT))
            .build();
        Ok(Mailer { transport, from })
    }

    fn message(&self, due: &DueMessage) -> Result<Message, Failure> {
        let recipient = due.recipient.as_deref().unwrap_or_default();
        let to: Mailbox = recipient
            .parse()
            .map_err(|e| Failure::Never(format!("recipient {recipient:?}: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(due.subject.as_str())
            .message_id(Some(format!("<{}@shop>", due.event_id)))
            .header(ContentType::TEXT_PLAIN)
            .body(due.body.clone())
            .map_err(|e| Failure::Never(format!("cannot build the message: {e}")))
    }

    async fn send(&self, due: &DueMessage) -> Result<(), Failure> {
        let message = self.message(due)?;
        match tokio::time::timeout(TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::Retry(e.to_string())),
            Err(_) => Err(Failure::Retry(format!(
                "the mail server did not answer within {TIMEOUT:?}"
            ))),
        }
    }
}

impl NotificationsService {
    /// Sends the messages that are due (up to a batch), marking each sent, or failed and due again after a
    /// backoff; returns how many were sent. Without SMTP configured it sends nothing.
    pub async fn send_due(&self) -> Result<usize, NotificationsError> {
        let Some(mailer) = self.mailer.clone() else {
            return Ok(0);
        };
        let claimed_at = Instant::now();
        let due = self
            .db
            .run(|conn| {
                store::claim_due(conn, db::now(), LEASE, BATCH).map_err(NotificationsError::from)
            })
            .await?;
        let mut sent = 0;
        let mut due = due.into_iter();
        while let Some(message) = due.next() {
            // A send begun now could outlast the lease and race another mailer's claim of the message: hand
            // the rest of the batch back, due at once (not sent yet, so no mailer can be sending them).
            if claimed_at.elapsed() + TIMEOUT * 2 > LEASE {
                let rest: Vec<String> = std::iter::once(message.id)
                    .chain(due.map(|m| m.id))
                    .collect();
                self.db
                    .run(move |conn| {
                        store::release(conn, &rest, db::now()).map_err(NotificationsError::from)
                    })
                    .await?;
                break;
            }
            let outcome = mailer.send(&message).await;
            let id = message.id.clone();
            if let Err(Failure::Retry(error) | Failure::Never(error)) = &outcome {
                tracing::warn!(
                    message_id = %message.id,
                    event_id = %message.event_id,
                    attempts = message.attempts + 1,
                    %error,
                    "sending a notification failed"
                );
            }
            let attempts = message.attempts;
            let delivered = outcome.is_ok();
            self.db
                .run(move |conn| {
                    let now = db::now();
                    match outcome {
                        Ok(()) => store::mark_sent(conn, &id, now),
                        Err(Failure::Retry(error)) => store::mark_failed(
                            conn,
                            &id,
                            &error,
                            Some(store::plus(now, backoff(attempts))),
                        ),
                        Err(Failure::Never(error)) => store::mark_failed(conn, &id, &error, None),
                    }
                    .map_err(NotificationsError::from)
                })
                .await?;
            sent += usize::from(delivered);
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use shop_identity::UserRegistered;
    use shop_kernel::RequestContext;
    use shop_kernel::events::Event;
    use uuid::Uuid;

    use super::*;
    use crate::api::{NotificationQuery, NotificationsApi};
    use crate::service::tests::{FakeIdentity, TestResult, customer, database, service, signed_in};

    /// A local SMTP sink (aiosmtpd printing each message to a file), stopped when dropped.
    struct Sink {
        child: Child,
        output: PathBuf,
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Whether the tests can run an SMTP sink; without one they are skipped, unless
    /// `SHOP_TEST_REQUIRE_SMTP=1` says the sink must be there (CI).
    fn sink_available() -> bool {
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var("SHOP_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
                "SHOP_TEST_REQUIRE_SMTP=1 but python3 cannot import aiosmtpd (pip install aiosmtpd)"
            );
            eprintln!(
                "skipped: python3 cannot import aiosmtpd (pip install aiosmtpd to run this test)"
            );
        }
        available
    }

    fn free_port() -> std::io::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    }

    async fn start_sink(port: u16, dir: &Path) -> Result<Sink, Box<dyn std::error::Error>> {
        let output = dir.join(format!("smtp-{port}.out"));
        let child = Command::new("python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Debugging", "stdout"])
            .stdout(std::fs::File::create(&output)?)
            .stderr(Stdio::null())
            .spawn()?;
        let sink = Sink { child, output };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sink);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the SMTP sink did not listen on port {port}").into())
    }

    /// What the sink printed, once it holds `expected` (or after a few seconds).
    async fn printed(sink: &Sink, expected: &str) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            text = std::fs::read_to_string(&sink.output).unwrap_or_default();
            if text.contains(expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        text
    }

    fn smtp(port: u16) -> SmtpConfig {
        SmtpConfig {
            url: format!("smtp://127.0.0.1:{port}"),
            from: "shop <noreply@shop.localhost>".into(),
        }
    }

    fn welcome(user_id: Uuid) -> Result<Event, serde_json::Error> {
        let registered = UserRegistered {
            user_id,
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
        };
        Event::new(&registered, chrono::Utc::now())
    }

    fn from_identity() -> RequestContext {
        RequestContext::system().as_module("identity")
    }

    const SUBJECT: &str = "Subject: Welcome to the shop, Ada";

    #[tokio::test]
    async fn a_message_is_mailed_once_and_marked_sent() -> TestResult {
        if !sink_available() {
            return Ok(());
        }
        let (db, dir) = database()?;
        let port = free_port()?;
        let sink = start_sink(port, &dir).await?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, Some(smtp(port)))?;
        let event = welcome(user.id)?;
        notifications
            .handle_event(&from_identity(), event.clone())
            .await?;
        notifications
            .handle_event(&from_identity(), event.clone())
            .await?;
        assert_eq!(notifications.send_due().await?, 1);
        assert_eq!(notifications.send_due().await?, 0, "sent once");

        let text = printed(&sink, SUBJECT).await;
        assert_eq!(text.matches(SUBJECT).count(), 1, "{text}");
        assert!(text.contains("To: ada@example.com"), "{text}");
        assert!(
            text.contains("From: shop <noreply@shop.localhost>"),
            "{text}"
        );
        assert!(
            text.contains(&format!("Message-ID: <{}@shop>", event.id)),
            "{text}"
        );
        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        assert!(page.items[0].sent_at.is_some());
        drop(sink);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_message_waits_out_a_mail_server_outage() -> TestResult {
        if !sink_available() {
            return Ok(());
        }
        let (db, dir) = database()?;
        let port = free_port()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, Some(smtp(port)))?;
        notifications
            .handle_event(&from_identity(), welcome(user.id)?)
            .await?;
        assert_eq!(notifications.send_due().await?, 0, "the server is down");
        let page = notifications
            .list_notifications(&signed_in(&user), NotificationQuery::default())
            .await?;
        let id = page.items[0].id.to_string();
        let state = |db: &shop_kernel::db::Database, id: String| {
            let db = db.clone();
            async move {
                db.run(move |c| store::delivery_state(c, &id).map_err(NotificationsError::from))
                    .await
            }
        };
        let (attempts, next, sent, error) = state(&db, id.clone()).await?;
        assert_eq!((attempts, sent), (1, None));
        assert!(
            next.is_some_and(|at| at > db::now()),
            "due again after a backoff"
        );
        assert!(error.is_some());

        let sink = start_sink(port, &dir).await?;
        assert_eq!(
            notifications.send_due().await?,
            0,
            "not before the backoff passes"
        );
        let past = db::now() - chrono::Duration::seconds(1);
        let message = id.clone();
        db.run(move |c| {
            use diesel::prelude::*;
            use store::notifications_messages::dsl as n;
            diesel::update(n::notifications_messages.filter(n::id.eq(message)))
                .set(n::next_attempt_at.eq(Some(past)))
                .execute(c)
                .map_err(NotificationsError::from)
        })
        .await?;
        assert_eq!(notifications.send_due().await?, 1);
        let text = printed(&sink, SUBJECT).await;
        assert_eq!(text.matches(SUBJECT).count(), 1, "{text}");
        let (attempts, next, sent, _) = state(&db, id).await?;
        assert_eq!((attempts, next), (1, None));
        assert!(sent.is_some());
        drop(sink);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_claimed_message_is_nobody_elses_until_its_lease_ends() -> TestResult {
        let (db, dir) = database()?;
        let user = customer();
        let identity = FakeIdentity {
            user: user.clone(),
            down: false,
        };
        let notifications = service(&db, identity, Some(smtp(free_port()?)))?;
        notifications
            .handle_event(&from_identity(), welcome(user.id)?)
            .await?;
        let now = db::now();
        let claim = |at| {
            let db = db.clone();
            async move {
                db.run(move |c| {
                    store::claim_due(c, at, LEASE, BATCH).map_err(NotificationsError::from)
                })
                .await
            }
        };
        let first = claim(now).await?;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].recipient.as_deref(), Some("ada@example.com"));
        assert!(claim(now).await?.is_empty(), "leased to the first claim");
        assert_eq!(
            claim(store::plus(now, LEASE)).await?.len(),
            1,
            "due again after the lease"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn backoff_doubles_from_a_second_to_at_most_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(8), Duration::from_secs(256));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
    }
}
