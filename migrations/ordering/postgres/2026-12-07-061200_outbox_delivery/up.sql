-- Deliveries of ordering's events (see shop_kernel::events::outbox): a subscriber that is down is retried until it is
-- back; only repeated permanent refusals park an event, so they are counted apart from all failures.
ALTER TABLE ordering_outbox ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0;
-- Undelivered events, a handful among millions of delivered ones: the backlog gauge (every few seconds), the
-- failing list (in id order) and bulk resubmits read only these.
CREATE INDEX ordering_outbox_undelivered ON ordering_outbox (id) WHERE delivered_at IS NULL;
-- Delivered events by age: the purge of those past retention.
CREATE INDEX ordering_outbox_delivered ON ordering_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
-- The relay's claim reads due events in due order, ties by id; delivered and parked events (no due time) are
-- left out of the index, which had an entry for every delivered event.
DROP INDEX ordering_outbox_due;
CREATE INDEX ordering_outbox_due ON ordering_outbox (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
-- Events parked by the old rule (twelve failures of any kind, an outage included) are given one more round
-- under the new one: due again (their occurrence is past), with a fresh count.
UPDATE ordering_outbox SET next_attempt_at = occurred_at, attempts = 0
    WHERE delivered_at IS NULL AND next_attempt_at IS NULL;
