//! Everything that can go wrong in inventory, and its one mapping to problem+json and back. The variants
//! every module shares (401, 403, 422, 503, 500) and their conversions come from the kernel.

use shop_kernel::Problem;

shop_kernel::module_error! {
    /// Inventory's errors; each variant's doc says the HTTP status it becomes.
    pub enum InventoryError {
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
    }
    to_problem {
        Self::SkuNotFound { sku } => {
            Problem::not_found(format!("SKU {sku} has no stock record.")).with("sku", sku)
        },
        Self::ReservationNotFound => Problem::new(
            404,
            "reservation_not_found",
            "Reservation not found",
            "No reservation exists for this order.",
        ),
        Self::BelowReserved { sku } => Problem::new(
            409,
            "below_reserved",
            "Below reserved",
            format!("on_hand of {sku} may not fall below the units reserved for orders."),
        )
        .with("sku", sku),
        Self::InsufficientStock { sku } => Problem::new(
            409,
            "insufficient_stock",
            "Insufficient stock",
            format!("Not enough units of {sku} are available."),
        )
        .with("sku", sku),
        Self::ReservationConflict => Problem::new(
            409,
            "reservation_conflict",
            "Reservation conflict",
            "This order already has a reservation with different lines.",
        ),
        Self::ReservationClosed(status) => Problem::new(
            409,
            "reservation_closed",
            "Reservation closed",
            status.clone(),
        ),
    }
    from_problem(p) {
        codes::NOT_FOUND => Self::SkuNotFound {
            sku: p.extension("sku").unwrap_or_default(),
        },
        "reservation_not_found" => Self::ReservationNotFound,
        "below_reserved" => Self::BelowReserved {
            sku: p.extension("sku").unwrap_or_default(),
        },
        "insufficient_stock" => Self::InsufficientStock {
            sku: p.extension("sku").unwrap_or_default(),
        },
        "reservation_conflict" => Self::ReservationConflict,
        "reservation_closed" => Self::ReservationClosed(p.detail_or_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError};

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
