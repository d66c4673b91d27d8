//! The payments contract: what other modules and remote callers may ask of the wallet.

use serde::{Deserialize, Serialize};
use shop_kernel::{Money, Page};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::error::PaymentsError;

/// A user's wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Wallet {
    /// What the user can spend.
    pub balance: Money,
    /// When the balance last changed (null for a wallet never used).
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What moved money in or out of a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// Store credit added by an admin.
    Credit,
    /// An order paid from the wallet.
    Charge,
    /// A charge given back (the order was cancelled or could not be completed).
    Refund,
}

impl TransactionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Credit => "credit",
            TransactionKind::Charge => "charge",
            TransactionKind::Refund => "refund",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "credit" => Some(TransactionKind::Credit),
            "charge" => Some(TransactionKind::Charge),
            "refund" => Some(TransactionKind::Refund),
            _ => None,
        }
    }
}

/// One entry of a wallet's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transaction {
    /// Transaction id (UUID v7).
    pub id: Uuid,
    /// Credit, charge or refund.
    pub kind: TransactionKind,
    /// How much moved (always positive; `kind` says which way).
    pub amount: Money,
    /// The order a charge or refund belongs to.
    pub order_id: Option<Uuid>,
    /// Why an admin credited the wallet.
    pub reason: Option<String>,
    /// When it happened.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Body of `POST /api/v1/wallets/{user_id}/credits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct NewCredit {
    /// Amount in minor units of the shop currency, 1 to 10^15.
    #[validate(range(
        min = 1,
        max = 1_000_000_000_000_000i64,
        message = "must be between 1 and 1000000000000000"
    ))]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000i64)]
    #[serde(deserialize_with = "shop_kernel::validation::integer")]
    pub amount_minor: i64,
    /// Why (goodwill, refund by hand...), 1–200 characters.
    #[validate(
        length(min = 1, max = 200, message = "must be 1-200 characters"),
        custom(function = "shop_kernel::validation::validate_text")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub reason: String,
}

/// Query of `GET /api/v1/wallet/transactions`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor`.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

/// Where an order's payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The wallet was charged.
    Charged,
    /// Given back, or refunded before any charge (a late charge is then refused).
    Refunded,
}

/// An order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// The order (the payment's key).
    pub order_id: Uuid,
    /// The paying user (nil when refunded before any charge).
    pub user_id: Uuid,
    /// The amount charged (zero when refunded before any charge).
    pub amount: Money,
    /// Charged or refunded.
    pub status: PaymentStatus,
}

shop_kernel::contract! {
    /// What payments offers: the signed-in user's wallet, credits by admins, and charges for ordering.
    pub trait PaymentsApi {
        module = "payments";
        error = PaymentsError;
        client = PaymentsClient;

        /// The signed-in user's wallet. Read-only.
        Read fn wallet() -> Wallet, for [User];

        /// The signed-in user's ledger, newest first. Read-only.
        Read fn transactions(query: TransactionQuery) -> Page<Transaction>, for [User];

        /// Adds store credit to a user's wallet; admins only. Idempotent when given an idempotency key (the
        /// same key and body replay the first outcome), otherwise each call applies once.
        Once fn credit(user_id: Uuid, credit: NewCredit, idempotency_key: Option<String>) -> Transaction, for [Admin];

        /// Charges `amount` to the user's wallet for `order_id`, or refuses with `insufficient_funds`; ordering
        /// only. Idempotent by order id: a repeat returns the first outcome (charge or refusal); after a refund
        /// of the order a charge is refused with `payment_closed`.
        Idempotent fn charge(order_id: Uuid, user_id: Uuid, amount: Money) -> Payment, for [Module("ordering")];

        /// Gives an order's charge back; ordering only. Idempotent; refunding an order never charged records it,
        /// so a late charge cannot go through.
        Idempotent fn refund(order_id: Uuid) -> Payment, for [Module("ordering")];
    }
}
