//! Everything that can go wrong in inventory, and its one mapping to problem+json and back.

use shop_kernel::problem::codes;
use shop_kernel::{AccessDenied, ApiError, FieldError, Problem};

/// Inventory's errors; each variant's doc says the HTTP status it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// 401: no valid access token.
    #[error("authentication required")]
    Unauthenticated,
    /// 403: the caller lacks the role.
    #[error("not allowed")]
    Forbidden,
    /// 422: invalid input.
    #[error("invalid input: {0:?}")]
    Validation(Vec<FieldError>),
    /// 404: the SKU has never been stocked.
    #[error("unknown sku {sku}")]
    SkuNotFound {
        /// The SKU asked for.
        sku: String,
    },
    /// 404: no reservation for that order.
    #[error("no reservation for that order")]
    ReservationNotFound,
    /// 409: on hand may not drop below the units reserved.
    #[error("on_hand would fall below the {sku} units reserved")]
    BelowReserved {
        /// The SKU.
        sku: String,
    },
    /// 409: not enough available units.
    #[error("insufficient stock for {sku}")]
    InsufficientStock {
        /// The first SKU that lacks stock.
        sku: String,
    },
    /// 409: the order already has a reservation with other lines.
    #[error("the order already has a different reservation")]
    ReservationConflict,
    /// 409: the reservation was released or expired and cannot be committed.
    #[error("the reservation is {0} and cannot be committed")]
    ReservationClosed(String),
    /// 422: an idempotency key was reused for a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// 409: the first request with this idempotency key is still running.
    #[error("idempotency key in use by a request still running")]
    IdempotencyKeyInUse,
    /// 503: a module inventory needs could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a fault on our side (logged, never sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AccessDenied> for InventoryError {
    fn from(e: AccessDenied) -> Self {
        match e {
            AccessDenied::Unauthenticated => InventoryError::Unauthenticated,
            AccessDenied::Forbidden => InventoryError::Forbidden,
        }
    }
}

#[cfg(feature = "local")]
impl From<shop_kernel::db::DbError> for InventoryError {
    fn from(e: shop_kernel::db::DbError) -> Self {
        use shop_kernel::db::DbError;
        match e {
            // The database is down or saturated: the module is unavailable (503, retryable), not broken.
            DbError::Connection(reason) => {
                tracing::warn!(%reason, "database unavailable");
                InventoryError::Unavailable("the database is unavailable".into())
            }
            DbError::UnsupportedUrl(_)
            | DbError::Query(_)
            | DbError::Migration(_)
            | DbError::Task(_) => InventoryError::Internal(e.to_string()),
        }
    }
}

#[cfg(feature = "local")]
impl From<diesel::result::Error> for InventoryError {
    fn from(e: diesel::result::Error) -> Self {
        InventoryError::Internal(e.to_string())
    }
}

impl ApiError for InventoryError {
    fn to_problem(&self) -> Problem {
        use InventoryError::*;
        match self {
            Unauthenticated => Problem::unauthenticated(),
            Forbidden => Problem::forbidden("Only admins may do this."),
            Validation(errors) => Problem::validation(errors.clone()),
            SkuNotFound { sku } => {
                Problem::not_found(format!("SKU {sku} has no stock record.")).with("sku", sku)
            }
            ReservationNotFound => Problem::new(
                404,
                "reservation_not_found",
                "Reservation not found",
                "No reservation exists for this order.",
            ),
            BelowReserved { sku } => Problem::new(
                409,
                "below_reserved",
                "Below reserved",
                format!("on_hand of {sku} may not fall below the units reserved for orders."),
            )
            .with("sku", sku),
            InsufficientStock { sku } => Problem::new(
                409,
                "insufficient_stock",
                "Insufficient stock",
                format!("Not enough units of {sku} are available."),
            )
            .with("sku", sku),
            ReservationConflict => Problem::new(
                409,
                "reservation_conflict",
                "Reservation conflict",
                "This order already has a reservation with different lines.",
            ),
            ReservationClosed(status) => Problem::new(
                409,
                "reservation_closed",
                "Reservation closed",
                status.clone(),
            ),
            IdempotencyKeyReused => Problem::new(
                422,
                codes::IDEMPOTENCY_KEY_REUSED,
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request.",
            ),
            IdempotencyKeyInUse => Problem::new(
                409,
                codes::IDEMPOTENCY_KEY_IN_USE,
                "Idempotency key in use",
                "The first request with this Idempotency-Key is still running; retry shortly.",
            ),
            Unavailable(detail) => Problem::unavailable(detail.clone()),
            Internal(_) => Problem::internal(),
        }
    }

    fn from_problem(p: Problem) -> Self {
        use InventoryError::*;
        let sku: String = p.extension("sku").unwrap_or_default();
        match p.code.as_str() {
            codes::UNAUTHENTICATED => Unauthenticated,
            codes::FORBIDDEN => Forbidden,
            codes::VALIDATION_FAILED => Validation(p.errors.unwrap_or_default()),
            codes::NOT_FOUND => SkuNotFound { sku },
            "reservation_not_found" => ReservationNotFound,
            "below_reserved" => BelowReserved { sku },
            "insufficient_stock" => InsufficientStock { sku },
            "reservation_conflict" => ReservationConflict,
            "reservation_closed" => ReservationClosed(p.detail_or_empty()),
            codes::IDEMPOTENCY_KEY_REUSED => IdempotencyKeyReused,
            codes::IDEMPOTENCY_KEY_IN_USE => IdempotencyKeyInUse,
            codes::UNAVAILABLE => Unavailable(p.detail_or_empty()),
            _ => Internal(format!("{} {}: {}", p.status, p.code, p.detail_or_empty())),
        }
    }

    fn unavailable(detail: String) -> Self {
        InventoryError::Unavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            InventoryError::Unauthenticated,
            InventoryError::Forbidden,
            InventoryError::Validation(vec![FieldError::new(
                "on_hand",
                "must be between 0 and 1000000000",
            )]),
            InventoryError::SkuNotFound { sku: "A-1".into() },
            InventoryError::ReservationNotFound,
            InventoryError::BelowReserved { sku: "A-1".into() },
            InventoryError::InsufficientStock { sku: "A-1".into() },
            InventoryError::ReservationConflict,
            InventoryError::ReservationClosed("expired".into()),
            InventoryError::IdempotencyKeyReused,
            InventoryError::IdempotencyKeyInUse,
            InventoryError::Unavailable("inventory did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(InventoryError::from_problem(back), e);
        }
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let p = InventoryError::Internal("password=hunter2".into()).to_problem();
        assert_eq!(p.status, 500);
        assert!(
            !serde_json::to_string(&p)
                .unwrap_or_default()
                .contains("hunter2")
        );
    }
}
