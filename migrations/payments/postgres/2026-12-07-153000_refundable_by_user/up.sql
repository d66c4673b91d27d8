-- A credit must leave room below the money bound for every refund the wallet may still get (payments'
-- `store::Ceiling`): it sums the user's charges not yet refunded, through this index.
CREATE INDEX payments_order_payments_charged ON payments_order_payments (user_id) WHERE status = 'charged';
