DROP TABLE identity_users;
