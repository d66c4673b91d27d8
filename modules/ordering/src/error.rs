//! Everything that can go wrong in ordering, and its one mapping to problem+json and back. The variants
//! every module shares (401, 403, 422, 503, 500) and their conversions come from the kernel.

use shop_kernel::Problem;

shop_kernel::module_error! {
    /// Ordering's errors; each variant's doc says the HTTP status it becomes.
    pub enum OrderingError {
        /// 404: no such order (or not yours to see).
        #[error("order not found")]
        OrderNotFound,
        /// 404: no undelivered ordering event with that id.
        #[error("event not found")]
        EventNotFound,
        /// 409: a line wants more units than are available.
        #[error("insufficient stock for {sku}")]
        InsufficientStock {
            /// The first SKU that lacks stock.
            sku: String,
        },
        /// 402: the wallet holds less than the order's total.
        #[error("insufficient funds (balance {balance})")]
        InsufficientFunds {
            /// The balance, in minor units, when the charge was refused.
            balance: i64,
        },
        /// 409: the order was placed and failed (`failure`: `reservation_expired`, or `unavailable` when a
        /// module it needed stayed unreachable past the give-up time); nothing is held or charged for it.
        #[error("order {order_id} failed: {failure}")]
        OrderFailed {
            /// The failed order (it can be read).
            order_id: uuid::Uuid,
            /// Why it failed, as `Order.failure` says.
            failure: String,
        },
        /// 409: only a confirmed order can be cancelled.
        #[error("a {status} order cannot be cancelled")]
        NotCancellable {
            /// The order's status.
            status: String,
        },
    }
    to_problem {
        Self::OrderNotFound => Problem::not_found("No such order."),
        Self::EventNotFound => Problem::event_not_found(),
        Self::InsufficientStock { sku } => Problem::new(
            409,
            "insufficient_stock",
            "Insufficient stock",
            format!("Not enough units of {sku} are available."),
        )
        .with("sku", sku),
        Self::InsufficientFunds { balance } => Problem::new(
            402,
            "insufficient_funds",
            "Insufficient funds",
            "The wallet holds less than the order's total.",
        )
        .with("balance", balance),
        Self::OrderFailed { order_id, failure } => Problem::new(
            409,
            "order_failed",
            "Order failed",
            format!("The order could not be placed ({failure}); nothing is held or charged for it."),
        )
        .with("order_id", order_id)
        .with("failure", failure),
        Self::NotCancellable { status } => Problem::new(
            409,
            "not_cancellable",
            "Not cancellable",
            format!("A {status} order cannot be cancelled; only a confirmed one can."),
        )
        .with("order_status", status),
    }
    from_problem(p) {
        codes::NOT_FOUND => Self::OrderNotFound,
        codes::EVENT_NOT_FOUND => Self::EventNotFound,
        "insufficient_stock" => Self::InsufficientStock {
            sku: p.extension("sku").unwrap_or_default(),
        },
        "insufficient_funds" => Self::InsufficientFunds {
            balance: p.extension("balance").unwrap_or_default(),
        },
        "order_failed" => Self::OrderFailed {
            order_id: p.extension("order_id").unwrap_or_default(),
            failure: p.extension("failure").unwrap_or_default(),
        },
        "not_cancellable" => Self::NotCancellable {
            status: p.extension("order_status").unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError};

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            OrderingError::Unauthenticated,
            OrderingError::Forbidden,
            OrderingError::Validation(vec![FieldError::new("lines", "must hold 1-50 lines")]),
            OrderingError::OrderNotFound,
            OrderingError::EventNotFound,
            OrderingError::InsufficientStock { sku: "A-1".into() },
            OrderingError::InsufficientFunds { balance: 1250 },
            OrderingError::NotCancellable {
                status: "pending".into(),
            },
            OrderingError::OrderFailed {
                order_id: uuid::Uuid::now_v7(),
                failure: "reservation_expired".into(),
            },
            OrderingError::IdempotencyKeyReused,
            OrderingError::IdempotencyKeyInUse,
            OrderingError::Unavailable("payments did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(OrderingError::from_problem(back), e);
        }
    }
}
