DROP TABLE ordering_outbox;
DROP TABLE ordering_order_lines;
DROP TABLE ordering_orders;
