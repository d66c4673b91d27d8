//! diesel queries on identity's own table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use shop_kernel::db::DbConn;

diesel::table! {
    identity_users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        display_name -> Text,
        role -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

/// A stored user.
#[derive(Debug, Clone, Queryable)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub role: String,
    pub created_at: NaiveDateTime,
}

type Columns = (
    identity_users::id,
    identity_users::email,
    identity_users::password_hash,
    identity_users::display_name,
    identity_users::role,
    identity_users::created_at,
);

const COLUMNS: Columns = (
    identity_users::id,
    identity_users::email,
    identity_users::password_hash,
    identity_users::display_name,
    identity_users::role,
    identity_users::created_at,
);

pub fn insert(conn: &mut DbConn, row: &UserRow) -> QueryResult<usize> {
    use identity_users::dsl as u;
    diesel::insert_into(u::identity_users)
        .values((
            u::id.eq(&row.id),
            u::email.eq(&row.email),
            u::password_hash.eq(&row.password_hash),
            u::display_name.eq(&row.display_name),
            u::role.eq(&row.role),
            u::created_at.eq(row.created_at),
            u::updated_at.eq(row.created_at),
        ))
        .execute(conn)
}

pub fn by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<UserRow>> {
    use identity_users::dsl as u;
    u::identity_users
        .filter(u::email.eq(email))
        .select(COLUMNS)
        .first(conn)
        .optional()
}

pub fn by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<UserRow>> {
    use identity_users::dsl as u;
    u::identity_users
        .filter(u::id.eq(id))
        .select(COLUMNS)
        .first(conn)
        .optional()
}

pub fn set_role(conn: &mut DbConn, id: &str, role: &str, now: NaiveDateTime) -> QueryResult<usize> {
    use identity_users::dsl as u;
    diesel::update(u::identity_users.filter(u::id.eq(id)))
        .set((u::role.eq(role), u::updated_at.eq(now)))
        .execute(conn)
}
