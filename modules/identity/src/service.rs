//! Identity's business rules: registration, sign-in with throttling, tokens and the admin bootstrap.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Params;
use shop_kernel::db::{self, Database, is_unique_violation, write_transaction};
use shop_kernel::events::outbox::Outbox;
use shop_kernel::events::{Event, FailingQuery, PendingEvent, ResubmitEvents, Resubmitted};
use shop_kernel::jwks::{Claims, Jwks};
use shop_kernel::validation::check;
use shop_kernel::{Allow, FieldError, Page, RequestContext, Role};
use uuid::Uuid;

use crate::api::{AccessToken, Credentials, IdentityApi, NewUser, User, UserRegistered};
use crate::error::IdentityError;
use crate::hashing::{HashPool, HashPoolError};
use crate::keys::SigningKey;
use crate::store::{self, UserRow};
use crate::throttle::{RateLimiter, Throttle, ThrottleConfig};

/// Argon2id cost. Production keeps OWASP's recommendation; tests may lower it.
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    /// Memory in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Passes (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

/// Settings of the identity implementation.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Signs access tokens.
    pub signing_key: SigningKey,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The tokens' `aud`.
    pub audience: String,
    /// Access-token lifetime.
    pub token_ttl: Duration,
    /// Password hashing cost.
    pub password_cost: PasswordCost,
    /// Sign-in throttling (failures per account and per client).
    pub throttle: ThrottleConfig,
    /// Registrations and sign-ins per client address per minute; 0 disables the limit.
    pub rate_limit_per_client: u32,
    /// Password hashes running at once (threads of their own; default: the number of cores).
    pub hash_threads: usize,
    /// How long a registration or sign-in waits for a hashing thread before it is told to retry (503).
    pub hash_wait: Duration,
}

/// The local implementation of [`IdentityApi`].
#[derive(Clone)]
pub struct IdentityService {
    db: Database,
    config: Arc<IdentityConfig>,
    throttle: Arc<Throttle>,
    rate_limit: Arc<RateLimiter>,
    hash_pool: Arc<HashPool>,
    /// A hash to verify against when the email is unknown, so that both answers take as long.
    dummy_hash: Arc<OnceLock<String>>,
}

type Outcome<T> = Result<T, IdentityError>;

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

const OUTBOX: Outbox = Outbox::new(crate::OUTBOX_TABLE);

fn user(row: UserRow) -> Outcome<User> {
    Ok(User {
        id: Uuid::parse_str(&row.id)
            .map_err(|e| IdentityError::Internal(format!("bad stored id: {e}")))?,
        email: row.email,
        display_name: row.display_name,
        role: Role::parse(&row.role)
            .ok_or_else(|| IdentityError::Internal(format!("bad stored role {}", row.role)))?,
        created_at: row.created_at.and_utc(),
    })
}

fn now_secs() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

impl IdentityService {
    /// Identity on `db` (its migrations already applied).
    pub fn new(db: Database, config: IdentityConfig) -> Result<Self, String> {
        let cost = config.password_cost;
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("invalid password hashing cost: {e}"))?;
        Ok(IdentityService {
            db,
            throttle: Arc::new(Throttle::new(config.throttle.clone())),
            rate_limit: Arc::new(RateLimiter::new(config.rate_limit_per_client)),
            hash_pool: Arc::new(HashPool::new(
                config.hash_threads,
                config.hash_wait,
                params,
            )?),
            config: Arc::new(config),
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    /// Hashes on the hashing threads: Argon2id is deliberately slow and must not stall a worker thread
    /// nor the blocking pool that runs database work.
    async fn hash(&self, password: String) -> Outcome<String> {
        self.hash_pool
            .run(move |argon2| {
                argon2
                    .hash(password.as_bytes())
                    .map_err(IdentityError::Internal)
            })
            .await
            .map_err(hash_pool_error)?
    }

    fn rate_limited(&self, ctx: &RequestContext) -> Outcome<()> {
        self.rate_limit
            .admit(ctx.client_addr.as_deref())
            .map_err(|retry_after| IdentityError::Throttled { retry_after })
    }

    async fn verify(&self, password: String, hash: Option<String>) -> Outcome<bool> {
        let hash = match hash {
            Some(h) => h,
            None => match self.dummy_hash.get() {
                Some(h) => h.clone(),
                None => {
                    let h = self.hash("not-a-real-password".into()).await?;
                    self.dummy_hash.get_or_init(|| h).clone()
                }
            },
        };
        self.hash_pool
            .run(move |argon2| argon2.verify(password.as_bytes(), &hash))
            .await
            .map_err(hash_pool_error)
    }

    async fn create(&self, new: NewUser, role: Role) -> Outcome<User> {
        let password_hash = self.hash(new.password).await?;
        let row = UserRow {
            id: Uuid::now_v7().to_string(),
            email: normalize_email(&new.email),
            password_hash,
            display_name: new.display_name.trim().to_string(),
            role: role.as_str().to_string(),
            created_at: db::now(),
        };
        let created = user(row.clone())?;
        // The account and its announcement commit together: neither exists without the other.
        let event = Event::new(
            &UserRegistered {
                user_id: created.id,
                email: created.email.clone(),
                display_name: created.display_name.clone(),
            },
            created.created_at,
        )
        .map_err(|e| IdentityError::Internal(format!("event: {e}")))?;
        self.db
            .run(move |conn| {
                write_transaction(conn, |c| {
                    store::insert(c, &row)?;
                    OUTBOX.publish(c, &event)
                })
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        IdentityError::EmailTaken
                    } else {
                        e.into()
                    }
                })
            })
            .await?;
        Ok(created)
    }

    async fn find_by_id(&self, id: Uuid) -> Outcome<Option<UserRow>> {
        self.db
            .run(move |conn| store::by_id(conn, &id.to_string()).map_err(IdentityError::from))
            .await
    }
}

fn hash_pool_error(e: HashPoolError) -> IdentityError {
    match e {
        HashPoolError::Busy { retry_after } => IdentityError::Busy { retry_after },
        HashPoolError::Closed => IdentityError::Unavailable("shutting down".into()),
    }
}

fn validate_new_user(new: &NewUser) -> Outcome<()> {
    let mut errors = check(new).err().unwrap_or_default();
    if new.display_name.trim().is_empty() && errors.iter().all(|e| e.field != "display_name") {
        errors.push(FieldError::new("display_name", "must not be blank"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(IdentityError::Validation(errors))
    }
}

#[async_trait::async_trait]
impl IdentityApi for IdentityService {
    async fn register(&self, ctx: &RequestContext, new: NewUser) -> Outcome<User> {
        self.rate_limited(ctx)?;
        validate_new_user(&new)?;
        // A taken email is refused before paying for a hash (registration says so anyway); the unique
        // index still decides a race between two registrations of one email.
        let email = normalize_email(&new.email);
        let taken = self
            .db
            .run(move |conn| store::by_email(conn, &email).map_err(IdentityError::from))
            .await?
            .is_some();
        if taken {
            return Err(IdentityError::EmailTaken);
        }
        // Registration never grants admin, whoever calls.
        self.create(new, Role::Customer).await
    }

    async fn issue_token(
        &self,
        ctx: &RequestContext,
        credentials: Credentials,
    ) -> Outcome<AccessToken> {
        self.rate_limited(ctx)?;
        let email = normalize_email(&credentials.email);
        let client = ctx.client_addr.as_deref();
        let attempt = self
            .throttle
            .admit(&email, client)
            .map_err(|retry_after| IdentityError::Throttled { retry_after })?;
        // An email no account can have is not looked up (PostgreSQL cannot even store a NUL), but it still
        // costs a hash and counts as a failure, like any unknown email.
        let row = if email.len() <= 254 && !email.chars().any(char::is_control) {
            let lookup = email.clone();
            self.db
                .run(move |conn| store::by_email(conn, &lookup).map_err(IdentityError::from))
                .await?
        } else {
            None
        };
        let ok = match self
            .verify(
                credentials.password,
                row.as_ref().map(|r| r.password_hash.clone()),
            )
            .await
        {
            Ok(ok) => ok,
            Err(e) => {
                // No password was checked: the attempt is not a failure.
                self.throttle.withdraw(&email, client, attempt);
                return Err(e);
            }
        };
        let row = match row {
            Some(row) if ok => row,
            // The admitted attempt stays on record as a failure.
            _ => return Err(IdentityError::InvalidCredentials),
        };
        self.throttle.succeeded(&email, client, attempt);
        let now = now_secs();
        let ttl = self.config.token_ttl.as_secs();
        let claims = Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: row.id,
            role: row.role,
            iat: now,
            exp: now + ttl,
        };
        let access_token = self
            .config
            .signing_key
            .sign(&claims)
            .map_err(IdentityError::Internal)?;
        Ok(AccessToken {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
        })
    }

    async fn me(&self, ctx: &RequestContext) -> Outcome<User> {
        let id = ctx.require_user()?.id;
        // A valid token for an account that no longer exists proves nothing.
        self.find_by_id(id)
            .await?
            .map(user)
            .unwrap_or(Err(IdentityError::Unauthenticated))
    }

    async fn get_user(&self, ctx: &RequestContext, id: Uuid) -> Outcome<User> {
        // Only the modules the access rule names may read any account; a user (whoever carries the call)
        // reads their own, an admin any.
        let named_module = crate::api::OPERATIONS
            .iter()
            .filter(|op| op.name == "get_user")
            .flat_map(|op| op.access)
            .any(|rule| matches!(rule, Allow::Module(m) if ctx.origin.is_module(m)));
        let allowed = named_module
            || ctx
                .user()
                .is_some_and(|u| u.role == Role::Admin || u.id == id);
        if !allowed {
            ctx.require_user()?;
            // Another user's account: its existence is not revealed.
            return Err(IdentityError::NotFound);
        }
        self.find_by_id(id)
            .await?
            .map(user)
            .unwrap_or(Err(IdentityError::NotFound))
    }

    async fn jwks(&self, _ctx: &RequestContext) -> Outcome<Jwks> {
        Ok(Jwks {
            keys: vec![self.config.signing_key.public_jwk().clone()],
        })
    }

    async fn ensure_admin(
        &self,
        _ctx: &RequestContext,
        email: String,
        password: String,
    ) -> Outcome<User> {
        let new = NewUser {
            email,
            password,
            display_name: "Administrator".into(),
        };
        validate_new_user(&new)?;
        let email = normalize_email(&new.email);
        for _ in 0..2 {
            let lookup = email.clone();
            let existing = self
                .db
                .run(move |conn| store::by_email(conn, &lookup).map_err(IdentityError::from))
                .await?;
            let Some(row) = existing else {
                match self.create(new.clone(), Role::Admin).await {
                    // Someone created the account meanwhile: check it on the next pass.
                    Err(IdentityError::EmailTaken) => continue,
                    other => return other,
                }
            };
            // Already an admin: nothing to promote, and its password stays its own.
            if row.role == Role::Admin.as_str() {
                return user(row);
            }
            // Whoever registered this email first must not become admin by it: only the holder of the
            // configured password is promoted.
            if !self
                .verify(new.password.clone(), Some(row.password_hash.clone()))
                .await?
            {
                return Err(IdentityError::AdminPasswordMismatch);
            }
            let id = row.id.clone();
            self.db
                .run(move |conn| {
                    write_transaction(conn, |c| {
                        store::set_role(c, &id, Role::Admin.as_str(), db::now())
                    })
                    .map_err(IdentityError::from)
                })
                .await?;
            return user(UserRow {
                role: Role::Admin.as_str().to_string(),
                ..row
            });
        }
        Err(IdentityError::Internal("ensure_admin kept racing".into()))
    }

    async fn failing_events(
        &self,
        ctx: &RequestContext,
        query: FailingQuery,
    ) -> Outcome<Page<PendingEvent>> {
        ctx.require_admin()?;
        OUTBOX
            .failing_page(&self.db, query, IdentityError::Validation)
            .await
    }

    async fn resubmit_event(&self, ctx: &RequestContext, id: Uuid) -> Outcome<PendingEvent> {
        ctx.require_admin()?;
        OUTBOX
            .resubmit_now(&self.db, id)
            .await?
            .ok_or(IdentityError::EventNotFound)
    }

    async fn resubmit_events(
        &self,
        ctx: &RequestContext,
        request: ResubmitEvents,
    ) -> Outcome<Resubmitted> {
        ctx.require_admin()?;
        OUTBOX
            .resubmit_in_bulk(&self.db, request, crate::api::EVENTS)
            .await
    }
}
