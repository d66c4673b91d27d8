//! Everything that can go wrong in payments, and its one mapping to problem+json and back. The variants
//! every module shares (401, 403, 422, 503, 500) and their conversions come from the kernel.

use shop_kernel::Problem;

shop_kernel::module_error! {
    /// Payments' errors; each variant's doc says the HTTP status it becomes.
    pub enum PaymentsError {
        /// 402: the wallet holds less than the charge.
        #[error("insufficient funds (balance {balance})")]
        InsufficientFunds {
            /// The balance, in minor units, when the charge was refused.
            balance: i64,
        },
        /// 404: no such user.
        #[error("user not found")]
        UserNotFound,
        /// 409: the order was refunded; it cannot be charged.
        #[error("the order's payment is closed")]
        PaymentClosed,
        /// 409: the order was charged with another user or amount.
        #[error("the order was charged differently")]
        PaymentConflict,
    }
    to_problem {
        Self::InsufficientFunds { balance } => Problem::new(
            402,
            "insufficient_funds",
            "Insufficient funds",
            "The wallet holds less than the order's total.",
        )
        .with("balance", balance),
        Self::UserNotFound => Problem::not_found("No such user."),
        Self::PaymentClosed => Problem::new(
            409,
            "payment_closed",
            "Payment closed",
            "This order's payment was refunded; it cannot be charged.",
        ),
        Self::PaymentConflict => Problem::new(
            409,
            "payment_conflict",
            "Payment conflict",
            "This order was charged with another user or amount.",
        ),
    }
    from_problem(p) {
        "insufficient_funds" => Self::InsufficientFunds {
            balance: p.extension("balance").unwrap_or_default(),
        },
        codes::NOT_FOUND => Self::UserNotFound,
        "payment_closed" => Self::PaymentClosed,
        "payment_conflict" => Self::PaymentConflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError};

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            PaymentsError::Unauthenticated,
            PaymentsError::Forbidden,
            PaymentsError::Validation(vec![FieldError::new("amount_minor", "must be positive")]),
            PaymentsError::InsufficientFunds { balance: 1250 },
            PaymentsError::UserNotFound,
            PaymentsError::PaymentClosed,
            PaymentsError::PaymentConflict,
            PaymentsError::IdempotencyKeyReused,
            PaymentsError::IdempotencyKeyInUse,
            PaymentsError::Unavailable("payments did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(PaymentsError::from_problem(back), e);
        }
    }
}
