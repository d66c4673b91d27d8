DROP TABLE notifications_inbox;
DROP TABLE notifications_messages;
