//! Who is calling, and on whose behalf: the first argument of every module trait method.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A shopper: registered through the public API.
    Customer,
    /// Staff: may change the catalog and stock.
    Admin,
}

impl Role {
    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An authenticated user, as proven by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCaller {
    /// The user's id (the token's `sub`).
    pub id: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
}

/// The end user a call is made for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Caller {
    /// No (valid) credentials were presented.
    #[default]
    Anonymous,
    /// A user with a verified access token.
    User(UserCaller),
}

/// Who made the call at the module boundary (the end user it is made for is [`Caller`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// An outside client, through the public API (or a gateway forwarding its request).
    #[default]
    Client,
    /// Another module, by name: in-process, or over `/internal` with a credential that may speak for it.
    Module(String),
    /// The process itself: startup, CLI, background tasks. Never crosses a process boundary.
    System,
}

impl Origin {
    /// True when the call comes from module `name`.
    pub fn is_module(&self, name: &str) -> bool {
        matches!(self, Origin::Module(m) if m == name)
    }
}

/// Why a caller may not do something; every module error converts from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDenied {
    /// No user is signed in (401).
    Unauthenticated,
    /// The user lacks the role (403).
    Forbidden,
}

/// Request-scoped facts every module call carries: caller, correlation ids, deadline.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Correlates logs across modules and services (`x-request-id`).
    pub request_id: String,
    /// W3C `traceparent` received from the client, forwarded on remote calls.
    pub traceparent: Option<String>,
    /// The end user the call is made for.
    pub caller: Caller,
    /// The caller's raw bearer token, forwarded when a module is called over HTTP.
    pub token: Option<String>,
    /// Who made the call: an outside client, a module (by name) or the system itself.
    pub origin: Origin,
    /// The client's network address, for throttling.
    pub client_addr: Option<String>,
    /// When the caller stops waiting; remote calls never wait past it.
    pub deadline: Option<Instant>,
}

impl RequestContext {
    /// A context for work the system does by itself (startup tasks, sweepers, the CLI).
    pub fn system() -> Self {
        RequestContext {
            request_id: Uuid::now_v7().to_string(),
            origin: Origin::System,
            ..Default::default()
        }
    }

    /// The same context, as a call made by module `name` (keeps the user it is made for, the request id
    /// and the deadline).
    pub fn as_module(&self, name: &str) -> Self {
        RequestContext {
            origin: Origin::Module(name.to_string()),
            ..self.clone()
        }
    }

    /// True when another module or the system makes the call, not an outside client.
    pub fn is_internal(&self) -> bool {
        self.origin != Origin::Client
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&UserCaller> {
        match &self.caller {
            Caller::User(u) => Some(u),
            Caller::Anonymous => None,
        }
    }

    /// The signed-in user, or `Unauthenticated`.
    pub fn require_user(&self) -> Result<&UserCaller, AccessDenied> {
        self.user().ok_or(AccessDenied::Unauthenticated)
    }

    /// An admin user, or `Unauthenticated` / `Forbidden`.
    pub fn require_admin(&self) -> Result<&UserCaller, AccessDenied> {
        let user = self.require_user()?;
        if user.role == Role::Admin {
            Ok(user)
        } else {
            Err(AccessDenied::Forbidden)
        }
    }

    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// A fresh request id (UUID v7) for a request that came without one.
///
/// Its random bits come from a generator per thread, seeded once from the operating system: a request
/// id correlates logs and is no secret, and `Uuid::now_v7` asks the kernel (`getrandom`) on every call,
/// one system call per request.
pub fn new_request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let (high, low) = Uuid::now_v7().as_u64_pair();
            high ^ low
        });
    }
    // SplitMix64: fast, and every seed gives a full-period sequence.
    fn next(state: &Cell<u64>) -> u64 {
        let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let (a, b) = STATE.with(|s| (next(s), next(s)));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A context for a signed-in user with this role.
    pub(crate) fn user(role: Role) -> RequestContext {
        RequestContext {
            caller: Caller::User(UserCaller {
                id: Uuid::now_v7(),
                role,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn anonymous_callers_are_unauthenticated_for_admin_operations() {
        assert_eq!(
            RequestContext::default().require_admin(),
            Err(AccessDenied::Unauthenticated)
        );
    }

    #[test]
    fn customers_are_forbidden_admin_operations() {
        assert_eq!(
            user(Role::Customer).require_admin(),
            Err(AccessDenied::Forbidden)
        );
        assert!(user(Role::Admin).require_admin().is_ok());
    }

    #[test]
    fn request_ids_are_distinct_version_7_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let parsed = uuid::Uuid::parse_str(id).unwrap_or_default();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
    }
}
