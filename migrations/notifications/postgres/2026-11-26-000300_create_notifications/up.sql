-- Every message the shop sends a user, recorded whether or not it is mailed. One per event at most
-- (event_id is unique). next_attempt_at is when the mailer sends it next: NULL once sent, and for a
-- message that is never mailed (no mail server configured, or no known recipient).
CREATE TABLE notifications_messages (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('welcome', 'order_confirmed', 'order_cancelled')),
    recipient       TEXT,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    sent_at         TIMESTAMP,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    last_error      TEXT
);
CREATE INDEX notifications_messages_user ON notifications_messages (user_id, id);
CREATE INDEX notifications_messages_due ON notifications_messages (next_attempt_at);

-- The events applied, written in the transaction that records each one's message: a redelivery is skipped.
CREATE TABLE notifications_inbox (
    event_id   TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    handled_at TIMESTAMP NOT NULL
);
