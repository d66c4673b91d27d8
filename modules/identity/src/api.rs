//! The identity contract: what other modules and remote callers may ask of identity.

use serde::{Deserialize, Serialize};
use shop_kernel::events::{FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
use shop_kernel::jwks::Jwks;
use shop_kernel::{Page, Role};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::error::IdentityError;

/// A user account as shown to its owner and to admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// User id (UUID v7).
    pub id: Uuid,
    /// Sign-in email, lowercased.
    pub email: String,
    /// Name shown in the shop.
    pub display_name: String,
    /// `customer` or `admin`.
    pub role: Role,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Body of `POST /api/v1/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct NewUser {
    /// A valid email address; it becomes the sign-in name.
    #[validate(
        email(message = "must be a valid email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 12–128 characters.
    #[validate(length(min = 12, max = 128, message = "must be 12-128 characters"))]
    #[schema(min_length = 12, max_length = 128)]
    pub password: String,
    /// 1–100 characters.
    #[validate(
        length(min = 1, max = 100, message = "must be 1-100 characters"),
        custom(function = "shop_kernel::validation::validate_single_line")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        min_length = 1,
        max_length = 100
    )]
    pub display_name: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// Body of `POST /api/v1/auth/token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// An issued access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    /// The signed JWT (EdDSA) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// `identity.user_registered` v1: an account was created (by registration or as the bootstrap admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserRegistered {
    /// The new account.
    pub user_id: Uuid,
    /// Its email, normalized (lower case).
    pub email: String,
    /// The name to greet it by.
    pub display_name: String,
}

impl shop_kernel::events::DomainEvent for UserRegistered {
    const TYPE: &'static str = "identity.user_registered";
    const VERSION: u32 = 1;
    const SUMMARY: &'static str = "An account was created.";
}

/// The events identity publishes.
pub const EVENTS: &[shop_kernel::events::EventInfo] =
    &[shop_kernel::events::info::<UserRegistered>()];

shop_kernel::contract! {
    /// What identity offers: accounts, sign-in, and the keys that verify access tokens.
    pub trait IdentityApi {
        module = "identity";
        error = IdentityError;
        client = IdentityClient;

        /// Registers a customer; anyone. Not idempotent: a repeat fails with `email_taken`.
        Once fn register(user: NewUser) -> User, for [Anyone];

        /// Checks credentials and issues an access token; anyone, throttled per account and per client.
        /// Not idempotent (failed attempts count toward throttling).
        Once fn issue_token(credentials: Credentials) -> AccessToken, for [Anyone];

        /// The signed-in user's account. Read-only.
        Read fn me() -> User, for [User];

        /// A user by id: the user themself, admins and the modules that act for users; others get
        /// `not_found`. Read-only.
        Read fn get_user(id: Uuid) -> User, for [User, Module("ordering"), Module("payments"), Module("notifications")];

        /// The public keys that verify access tokens; anyone. Read-only.
        Read fn jwks() -> Jwks, for [Anyone];

        /// Makes sure an admin with this email exists: creates it with this password if absent; an existing
        /// account is promoted only when this password verifies against it (else `admin_password_mismatch`).
        /// The system only: never served over HTTP. Idempotent.
        Idempotent fn ensure_admin(email: String, password: String) -> User, for [System];

        /// Identity's events whose delivery keeps failing, oldest first; admins only. Read-only.
        Read fn failing_events(query: FailingQuery) -> Page<PendingEvent>, for [Admin];

        /// Makes a failing or parked event due again now; admins only. Idempotent.
        Idempotent fn resubmit_event(id: Uuid) -> PendingEvent, for [Admin];

        /// Makes every undelivered identity event that failed at least once due again now, with a fresh count
        /// of attempts: only those of `event_type` (one identity publishes, else `validation_failed`), only
        /// parked ones with `parked_only`; answers how many. Admins only. Idempotent.
        Idempotent fn resubmit_events(request: ResubmitEvents) -> Resubmitted, for [Admin];
    }
}
