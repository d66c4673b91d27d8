//! Payments' business rules: a wallet that never goes negative under any concurrency, charges and refunds
//! idempotent by order id, and credits idempotent by key.

use std::sync::Arc;

use shop_identity::{IdentityApi, IdentityError};
use shop_kernel::db::{self, Database, DbConn, retry_lost_races};
use shop_kernel::idempotency::{self, IdempotencyKeys};
use shop_kernel::money::MAX_AMOUNT_MINOR;
use shop_kernel::page::checked_id_page;
use shop_kernel::validation::check;
use shop_kernel::{FieldError, Money, Page, RequestContext};
use uuid::Uuid;

use crate::api::{
    MODULE, NewCredit, Payment, PaymentStatus, PaymentsApi, Transaction, TransactionKind,
    TransactionQuery, Wallet,
};
use crate::error::PaymentsError;
use crate::store::{self, status};

/// Settings of the payments implementation.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// The shop's one currency (ISO 4217): wallets hold it, charges in any other are refused.
    pub currency: String,
}

/// The local implementation of [`PaymentsApi`].
#[derive(Clone)]
pub struct PaymentsService {
    db: Database,
    config: PaymentsConfig,
    /// Tells whether a credited user exists.
    identity: Arc<dyn IdentityApi>,
}

type Outcome<T> = Result<T, PaymentsError>;

/// `Idempotency-Key`s of credits, per admin.
const IDEMPOTENCY_KEYS: IdempotencyKeys = IdempotencyKeys::new("payments_idempotency_keys");

fn parse_id(id: &str) -> Outcome<Uuid> {
    Uuid::parse_str(id).map_err(|e| PaymentsError::Internal(format!("bad stored id {id}: {e}")))
}

impl PaymentsService {
    /// Payments on `db` (its migrations already applied), asking `identity` whether users exist.
    pub fn new(db: Database, config: PaymentsConfig, identity: Arc<dyn IdentityApi>) -> Self {
        PaymentsService {
            db,
            config,
            identity,
        }
    }

    /// Forgets credits' idempotency keys older than [`idempotency::RETENTION`] (a day), as inventory's sweep
    /// does for its own; returns how many. Run periodically by the host process; safe to run concurrently.
    pub async fn purge_idempotency_keys(&self) -> Outcome<usize> {
        let retention =
            chrono::Duration::from_std(idempotency::RETENTION).unwrap_or(chrono::Duration::days(1));
        self.db
            .run(move |conn| {
                IDEMPOTENCY_KEYS
                    .purge(conn, db::now() - retention)
                    .map_err(PaymentsError::from)
            })
            .await
    }

    fn money(&self, amount_minor: i64) -> Money {
        Money::new(amount_minor, self.config.currency.clone())
    }

    fn transaction(&self, row: store::TransactionRow) -> Outcome<Transaction> {
        let (id, kind, amount, order_id, reason, created_at) = row;
        Ok(Transaction {
            id: parse_id(&id)?,
            kind: TransactionKind::parse(&kind)
                .ok_or_else(|| PaymentsError::Internal(format!("bad stored kind {kind}")))?,
            amount: self.money(amount),
            order_id: order_id.as_deref().map(parse_id).transpose()?,
            reason,
            created_at: created_at.and_utc(),
        })
    }

    fn payment(&self, order_id: Uuid, row: &store::PaymentRow) -> Outcome<Payment> {
        let (user_id, amount, stored) = row;
        Ok(Payment {
            order_id,
            user_id: parse_id(user_id)?,
            amount: self.money(*amount),
            status: if stored == status::REFUNDED {
                PaymentStatus::Refunded
            } else {
                PaymentStatus::Charged
            },
        })
    }

    /// Checks that a charge is a positive amount of the shop currency within the bound.
    fn check_amount(&self, amount: &Money) -> Outcome<()> {
        let mut errors = check(amount).err().unwrap_or_default();
        if amount.amount_minor < 1 {
            errors.push(FieldError::new("amount.amount_minor", "must be positive"));
        }
        if amount.currency != self.config.currency {
            errors.push(FieldError::new(
                "amount.currency",
                format!("must be {}, the shop currency", self.config.currency),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(PaymentsError::Validation(errors))
        }
    }
}

fn balance(conn: &mut DbConn, user_id: &str) -> Outcome<i64> {
    Ok(store::wallet(conn, user_id)?.map_or(0, |(b, _)| b))
}

#[async_trait::async_trait]
impl PaymentsApi for PaymentsService {
    async fn wallet(&self, ctx: &RequestContext) -> Outcome<Wallet> {
        let user = ctx.require_user()?.id.to_string();
        let row = self
            .db
            .run(move |conn| store::wallet(conn, &user).map_err(PaymentsError::from))
            .await?;
        Ok(Wallet {
            balance: self.money(row.map_or(0, |(b, _)| b)),
            updated_at: row.map(|(_, at)| at.and_utc()),
        })
    }

    async fn transactions(
        &self,
        ctx: &RequestContext,
        query: TransactionQuery,
    ) -> Outcome<Page<Transaction>> {
        let user = ctx.require_user()?.id.to_string();
        let mut errors = Vec::new();
        let (limit, before) = checked_id_page(query.limit, query.cursor.as_deref(), &mut errors);
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(PaymentsError::Validation(errors));
        };
        let rows = self
            .db
            .run(move |conn| {
                store::transactions(conn, &user, before.as_deref(), i64::from(limit) + 1)
                    .map_err(PaymentsError::from)
            })
            .await?;
        let items = rows
            .into_iter()
            .map(|row| self.transaction(row))
            .collect::<Outcome<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |t| t.id.simple().to_string()))
    }

    async fn credit(
        &self,
        ctx: &RequestContext,
        user_id: Uuid,
        credit: NewCredit,
        idempotency_key: Option<String>,
    ) -> Outcome<Transaction> {
        let admin = ctx.require_admin()?.id.to_string();
        check(&credit).map_err(PaymentsError::Validation)?;
        if let Some(key) = &idempotency_key {
            idempotency::check_key(key).map_err(|e| PaymentsError::Validation(vec![e]))?;
        }
        // Only an existing user has a wallet: identity says (payments may read any account).
        match self
            .identity
            .get_user(&ctx.as_module(MODULE), user_id)
            .await
        {
            Ok(_) => {}
            Err(IdentityError::NotFound) => return Err(PaymentsError::UserNotFound),
            Err(IdentityError::Unavailable(detail)) => {
                return Err(PaymentsError::Unavailable(detail));
            }
            Err(other) => return Err(PaymentsError::Internal(format!("identity: {other}"))),
        }
        let request = serde_json::json!({
            "user_id": user_id, "amount_minor": credit.amount_minor, "reason": credit.reason,
        })
        .to_string();
        let service = self.clone();
        self.db
            .run(move |conn| {
                let user = user_id.to_string();
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    let key = idempotency_key.as_deref();
                    if let Some(answer) = IDEMPOTENCY_KEYS.begin(c, &admin, key, &request, now)? {
                        return Ok(answer);
                    }
                    store::ensure_wallet(c, &user, now)?;
                    store::lock_wallet(c, &user)?;
                    let refundable = store::refundable(c, &user)?;
                    let outcome = if store::deposit(
                        c,
                        &user,
                        credit.amount_minor,
                        store::Ceiling::Credit { refundable },
                        now,
                    )? == 1
                    {
                        let id = Uuid::now_v7().to_string();
                        store::insert_transaction(
                            c,
                            &id,
                            &user,
                            TransactionKind::Credit.as_str(),
                            credit.amount_minor,
                            None,
                            Some(&credit.reason),
                            now,
                        )?;
                        service.transaction((
                            id,
                            TransactionKind::Credit.as_str().to_string(),
                            credit.amount_minor,
                            None,
                            Some(credit.reason.clone()),
                            now,
                        ))
                    } else {
                        Err(PaymentsError::Validation(vec![FieldError::new(
                            "amount_minor",
                            format!(
                                "would take the balance above {MAX_AMOUNT_MINOR}, counting the \
                                 {refundable} that refunds of current charges may give back"
                            ),
                        )]))
                    };
                    IDEMPOTENCY_KEYS.settle(c, &admin, key, outcome)
                })
                .and_then(|outcome| outcome)
            })
            .await
    }

    async fn charge(
        &self,
        _ctx: &RequestContext,
        order_id: Uuid,
        user_id: Uuid,
        amount: Money,
    ) -> Outcome<Payment> {
        self.check_amount(&amount)?;
        let service = self.clone();
        self.db
            .run(move |conn| {
                let (order, user) = (order_id.to_string(), user_id.to_string());
                // Two first charges of one order race on the payment row; the loser sees the winner's.
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    // The payment row is written first: a duplicate waits on it instead of racing for funds,
                    // then answers from it.
                    let first = store::insert_payment_if_new(
                        c,
                        &order,
                        &user,
                        amount.amount_minor,
                        status::CHARGED,
                        now,
                    )?;
                    if !first {
                        store::lock_payment(c, &order)?;
                        let row = store::payment(c, &order)?
                            .ok_or_else(|| PaymentsError::Internal("payment vanished".into()))?;
                        return Ok(service.repeated_charge(c, order_id, &user, &amount, &row));
                    }
                    // No wallet, or too little in it: either way nothing is taken.
                    if store::withdraw(c, &user, amount.amount_minor, now)? == 0 {
                        // The refusal is the order's first outcome: kept, so a repeat answers the same.
                        store::set_payment_status(c, &order, status::DECLINED, now)?;
                        return Ok(Err(PaymentsError::InsufficientFunds {
                            balance: balance(c, &user)?,
                        }));
                    }
                    store::insert_transaction(
                        c,
                        &Uuid::now_v7().to_string(),
                        &user,
                        TransactionKind::Charge.as_str(),
                        amount.amount_minor,
                        Some(&order),
                        None,
                        now,
                    )?;
                    Ok(service.payment(
                        order_id,
                        &(user.clone(), amount.amount_minor, status::CHARGED.into()),
                    ))
                })
                .and_then(|outcome| outcome)
            })
            .await
    }

    async fn refund(&self, _ctx: &RequestContext, order_id: Uuid) -> Outcome<Payment> {
        let service = self.clone();
        self.db
            .run(move |conn| {
                let order = order_id.to_string();
                retry_lost_races(conn, |c| {
                    let now = db::now();
                    store::lock_payment(c, &order)?;
                    let Some((user, amount, stored)) = store::payment(c, &order)? else {
                        // A tombstone: a charge for this order arriving late must not go through.
                        let nil = Uuid::nil().to_string();
                        store::insert_payment(c, &order, &nil, 0, status::REFUNDED, now)?;
                        return Ok(service.payment(order_id, &(nil, 0, status::REFUNDED.into())));
                    };
                    if stored == status::CHARGED {
                        if store::deposit(c, &user, amount, store::Ceiling::Refund, now)? == 0 {
                            return Ok(Err(PaymentsError::Validation(vec![FieldError::new(
                                "order_id",
                                "the refund would overflow the balance",
                            )])));
                        }
                        store::insert_transaction(
                            c,
                            &Uuid::now_v7().to_string(),
                            &user,
                            TransactionKind::Refund.as_str(),
                            amount,
                            Some(&order),
                            None,
                            now,
                        )?;
                    }
                    // Charged (now given back) or declined (nothing was taken): both end refunded.
                    if stored != status::REFUNDED {
                        store::set_payment_status(c, &order, status::REFUNDED, now)?;
                    }
                    Ok(service.payment(order_id, &(user, amount, status::REFUNDED.into())))
                })
                .and_then(|outcome| outcome)
            })
            .await
    }
}

impl PaymentsService {
    /// The answer to a charge of an order that already has a payment: its first outcome, unless it asks
    /// for something else.
    fn repeated_charge(
        &self,
        conn: &mut DbConn,
        order_id: Uuid,
        user: &str,
        amount: &Money,
        row: &store::PaymentRow,
    ) -> Outcome<Payment> {
        let (stored_user, stored_amount, stored) = row;
        if stored == status::REFUNDED {
            return Err(PaymentsError::PaymentClosed);
        }
        if stored_user != user || *stored_amount != amount.amount_minor {
            return Err(PaymentsError::PaymentConflict);
        }
        if stored == status::DECLINED {
            return Err(PaymentsError::InsufficientFunds {
                balance: balance(conn, user)?,
            });
        }
        self.payment(order_id, row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::SimpleConnection;
    use shop_identity::{AccessToken, Credentials, NewUser, User};
    use shop_kernel::Page;
    use shop_kernel::events::{FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
    use shop_kernel::jwks::Jwks;

    /// Identity, unreachable: the purge needs none of it.
    struct NoIdentity;

    #[async_trait::async_trait]
    impl IdentityApi for NoIdentity {
        async fn register(&self, _: &RequestContext, _: NewUser) -> Result<User, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn issue_token(
            &self,
            _: &RequestContext,
            _: Credentials,
        ) -> Result<AccessToken, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn me(&self, _: &RequestContext) -> Result<User, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn get_user(&self, _: &RequestContext, _: Uuid) -> Result<User, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn jwks(&self, _: &RequestContext) -> Result<Jwks, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn ensure_admin(
            &self,
            _: &RequestContext,
            _: String,
            _: String,
        ) -> Result<User, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn failing_events(
            &self,
            _: &RequestContext,
            _: FailingQuery,
        ) -> Result<Page<PendingEvent>, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn resubmit_event(
            &self,
            _: &RequestContext,
            _: Uuid,
        ) -> Result<PendingEvent, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
        async fn resubmit_events(
            &self,
            _: &RequestContext,
            _: ResubmitEvents,
        ) -> Result<Resubmitted, IdentityError> {
            Err(IdentityError::Unavailable("none".into()))
        }
    }

    #[tokio::test]
    async fn idempotency_keys_older_than_a_day_are_purged_and_younger_ones_kept()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("shop-payments-{}", Uuid::now_v7()));
        let db = Database::connect(&format!("sqlite://{}/t.db", dir.display()), 2)?;
        db.get()?.batch_execute(include_str!(
            "../../../migrations/payments/sqlite/2026-11-26-000400_create_payments/up.sql"
        ))?;
        let payments = PaymentsService::new(
            db.clone(),
            PaymentsConfig {
                currency: "EUR".into(),
            },
            Arc::new(NoIdentity),
        );
        let now = db::now();
        {
            let mut conn = db.get()?;
            let day = chrono::Duration::days(1);
            for (key, at) in [
                ("old", now - day - chrono::Duration::minutes(1)),
                ("young", now - day + chrono::Duration::minutes(1)),
            ] {
                IDEMPOTENCY_KEYS.claim(&mut conn, "admin", key, "{}", at)?;
            }
        }
        assert_eq!(payments.purge_idempotency_keys().await?, 1);
        assert_eq!(payments.purge_idempotency_keys().await?, 0);
        let mut conn = db.get()?;
        assert_eq!(
            IDEMPOTENCY_KEYS.claim(&mut conn, "admin", "young", "{\"other\":1}", now)?,
            idempotency::Claim::Reused,
            "the young key is still known"
        );
        assert_eq!(
            IDEMPOTENCY_KEYS.claim(&mut conn, "admin", "old", "{\"other\":1}", now)?,
            idempotency::Claim::New,
            "the old key is forgotten"
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
