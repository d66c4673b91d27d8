//! Money in integer minor units, with checked arithmetic and a documented bound.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::problem::FieldError;

/// The largest amount shop handles, in minor units: 10^15 (ten trillion in a two-decimal currency). Every
/// amount, price, line total and balance stays within it, so sums of a few of them never overflow an `i64`
/// and every amount is exact in a JSON number read as a double (below 2^53).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// An amount of money: integer minor units (cents) and an ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct Money {
    /// Amount in minor units, e.g. 1999 for 19.99; 0 to 10^15.
    #[validate(range(
        min = 0,
        max = 1_000_000_000_000_000i64,
        message = "must be between 0 and 1000000000000000"
    ))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000i64)]
    #[serde(deserialize_with = "crate::validation::integer")]
    pub amount_minor: i64,
    /// ISO 4217 code; the shop accepts only its configured currency.
    #[validate(length(equal = 3, message = "must be a three-letter ISO 4217 code"))]
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

/// Why an amount could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The result would leave `0..=MAX_AMOUNT_MINOR` (or a negative quantity was given).
    #[error("the amount would exceed {MAX_AMOUNT_MINOR} minor units or fall below zero")]
    OutOfRange,
    /// Amounts in two currencies cannot be combined.
    #[error("cannot combine {0} and {1}")]
    CurrencyMismatch(String, String),
}

impl MoneyError {
    /// The 422 field error a module reports for this failure of `field`.
    pub fn field_error(&self, field: &str) -> FieldError {
        FieldError::new(field, self.to_string())
    }
}

impl Money {
    /// A new amount.
    pub fn new(amount_minor: i64, currency: impl Into<String>) -> Self {
        Money {
            amount_minor,
            currency: currency.into(),
        }
    }

    /// Zero in `currency`.
    pub fn zero(currency: impl Into<String>) -> Self {
        Money::new(0, currency)
    }

    fn within(amount: Option<i64>) -> Result<i64, MoneyError> {
        amount
            .filter(|a| (0..=MAX_AMOUNT_MINOR).contains(a))
            .ok_or(MoneyError::OutOfRange)
    }

    /// `self + other`, within the bound and in one currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = Self::within(self.amount_minor.checked_add(other.amount_minor))?;
        Ok(Money::new(sum, self.currency.clone()))
    }

    /// `self - other`, never below zero.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let difference = Self::within(self.amount_minor.checked_sub(other.amount_minor))?;
        Ok(Money::new(difference, self.currency.clone()))
    }

    /// `self × quantity` (a line total), within the bound.
    pub fn checked_mul(&self, quantity: i64) -> Result<Money, MoneyError> {
        let product = Self::within(self.amount_minor.checked_mul(quantity))?;
        Ok(Money::new(product, self.currency.clone()))
    }

    /// The sum of `amounts` in `currency` (zero when empty).
    pub fn checked_sum<'a>(
        currency: &str,
        amounts: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |total, m| total.checked_add(m))
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.clone(),
                other.currency.clone(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, "EUR")
    }

    #[test]
    fn line_totals_and_sums_stay_within_the_bound() {
        assert_eq!(eur(1999).checked_mul(3), Ok(eur(5997)));
        assert_eq!(
            eur(MAX_AMOUNT_MINOR).checked_mul(2),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(
            eur(i64::MAX).checked_mul(i64::MAX),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(eur(1).checked_mul(-1), Err(MoneyError::OutOfRange));
        assert_eq!(
            Money::checked_sum("EUR", &[eur(MAX_AMOUNT_MINOR), eur(1)]),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(Money::checked_sum("EUR", &[eur(1), eur(2)]), Ok(eur(3)));
        assert_eq!(Money::checked_sum("EUR", &[]), Ok(eur(0)));
    }

    #[test]
    fn balances_never_go_below_zero_and_currencies_never_mix() {
        assert_eq!(eur(5).checked_sub(&eur(5)), Ok(eur(0)));
        assert_eq!(eur(5).checked_sub(&eur(6)), Err(MoneyError::OutOfRange));
        assert!(matches!(
            eur(5).checked_add(&Money::new(5, "USD")),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn amounts_above_the_bound_fail_validation() {
        assert!(eur(MAX_AMOUNT_MINOR).validate().is_ok());
        assert!(eur(MAX_AMOUNT_MINOR + 1).validate().is_err());
    }
}
