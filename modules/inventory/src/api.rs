//! The inventory contract: what other modules and remote callers may ask of inventory.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::error::InventoryError;

/// Stock levels of one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLevels {
    /// The stock-keeping unit.
    pub sku: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units held for orders in checkout.
    pub reserved: i64,
    /// `on_hand - reserved`: units that can still be reserved.
    pub available: i64,
}

/// Body of `PUT /api/v1/inventory/{sku}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct SetStock {
    /// The new number of units on hand, 0–1,000,000,000.
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "shop_kernel::validation::integer")]
    pub on_hand: i64,
}

/// Body of `POST /api/v1/inventory/{sku}/adjustments`: a relative change with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct Adjustment {
    /// Units to add (positive) or remove (negative); not zero.
    #[validate(
        range(min = -1_000_000_000, max = 1_000_000_000, message = "must be between -1000000000 and 1000000000"),
        custom(function = "non_zero")
    )]
    #[schema(schema_with = delta_schema)]
    #[serde(deserialize_with = "shop_kernel::validation::integer")]
    pub delta: i64,
    /// Why the stock changed (recount, damage, delivery...), 1–200 characters.
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

/// `delta`'s schema: a non-zero integer within ±10^9, as two ranges (JSON Schema has no "not zero" that every
/// client generator understands).
fn delta_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let range = |min: i64, max: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(min))
            .maximum(Some(max))
    };
    Schema::OneOf(
        OneOfBuilder::new()
            .item(range(-1_000_000_000, -1))
            .item(range(1, 1_000_000_000))
            .description(Some(
                "Units to add (positive) or remove (negative); not zero, at most 10^9 either way.",
            ))
            .build(),
    )
}

fn non_zero(delta: i64) -> Result<(), validator::ValidationError> {
    if delta == 0 {
        Err(validator::ValidationError::new("non_zero").with_message("must not be zero".into()))
    } else {
        Ok(())
    }
}

/// One SKU and quantity to reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct ReservationLine {
    /// The SKU to hold.
    #[validate(custom(function = "shop_kernel::validation::validate_sku"))]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// Units to hold, 1–1,000,000.
    #[validate(range(min = 1, max = 1_000_000, message = "must be between 1 and 1000000"))]
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "shop_kernel::validation::integer")]
    pub quantity: i64,
}

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Units are held (counted in `reserved`) until committed, released or expired.
    Held,
    /// The order was confirmed: the units left `on_hand`.
    Committed,
    /// Given back by the caller (before or after commit).
    Released,
    /// Not committed or released in time; the units were given back.
    Expired,
}

impl ReservationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "held" => Some(ReservationStatus::Held),
            "committed" => Some(ReservationStatus::Committed),
            "released" => Some(ReservationStatus::Released),
            "expired" => Some(ReservationStatus::Expired),
            _ => None,
        }
    }
}

/// Stock held for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// The order the units are held for (the reservation's key).
    pub order_id: Uuid,
    /// Current status.
    pub status: ReservationStatus,
    /// The held lines, sorted by SKU.
    pub lines: Vec<ReservationLine>,
    /// When a held reservation expires if neither committed nor released.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

shop_kernel::contract! {
    /// What inventory offers: stock levels by SKU, and reservations for checkout.
    pub trait InventoryApi {
        module = "inventory";
        error = InventoryError;
        client = InventoryClient;

        /// Stock levels of a SKU; anyone may read them. Read-only.
        Read fn get_stock(sku: String) -> StockLevels, for [Anyone];

        /// Sets the units on hand, creating the SKU's record if needed; admins only. Idempotent.
        Idempotent fn set_stock(sku: String, stock: SetStock) -> StockLevels, for [Admin];

        /// Adds `delta` units (negative removes); admins only. Idempotent when given an idempotency key
        /// (the same key and body replay the first outcome), otherwise each call applies once.
        Once fn adjust_stock(sku: String, adjustment: Adjustment, idempotency_key: Option<String>) -> StockLevels, for [Admin];

        /// Holds every line for `order_id`, or nothing if any line lacks stock; ordering only.
        /// Idempotent by order id: repeating it returns the existing reservation whatever its status, so a
        /// caller retrying after a long pause checks `status` (it may have expired or been released).
        Idempotent fn reserve(order_id: Uuid, lines: Vec<ReservationLine>) -> Reservation, for [Module("ordering")];

        /// Turns a held reservation into a sale (units leave on hand); ordering only. Idempotent.
        Idempotent fn commit_reservation(order_id: Uuid) -> Reservation, for [Module("ordering")];

        /// Gives the units back (held: unreserved; committed: returned to on hand); ordering only.
        /// Idempotent; releasing an unknown order records it, so a late `reserve` cannot hold stock for it.
        Idempotent fn release_reservation(order_id: Uuid) -> Reservation, for [Module("ordering")];

        /// The reservation for an order; ordering only. Read-only.
        Read fn get_reservation(order_id: Uuid) -> Reservation, for [Module("ordering")];
    }
}
