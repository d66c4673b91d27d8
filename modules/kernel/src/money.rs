//! Money in integer minor units.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

/// An amount of money: integer minor units (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct Money {
    /// Amount in minor units, e.g. 1999 for 19.99.
    #[validate(range(min = 0, message = "must not be negative"))]
    #[schema(minimum = 0)]
    pub amount_minor: i64,
    /// ISO 4217 code; the shop accepts only its configured currency.
    #[validate(length(equal = 3, message = "must be a three-letter ISO 4217 code"))]
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

impl Money {
    /// A new amount.
    pub fn new(amount_minor: i64, currency: impl Into<String>) -> Self {
        Money {
            amount_minor,
            currency: currency.into(),
        }
    }
}
