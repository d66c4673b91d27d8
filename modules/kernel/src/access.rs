//! Who may call a contract operation. Each operation declares its rule in the module's `api.rs`; the
//! generated wrapper and the `/internal` dispatcher enforce it, so it holds in-process and remote alike.

use crate::context::{AccessDenied, Origin, RequestContext, Role};

/// One kind of caller an operation admits; an operation admits a caller when any of its rules does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Everyone, signed in or not.
    Anyone,
    /// Any signed-in user (the end user the call is made for).
    User,
    /// A signed-in admin.
    Admin,
    /// The named module, calling in-process or proving its credential over `/internal`.
    Module(&'static str),
    /// The process itself (startup, CLI, background tasks); never reachable over HTTP.
    System,
}

impl Allow {
    /// The rule as listed in OpenAPI documents.
    pub fn describe(self) -> String {
        match self {
            Allow::Anyone => "anyone".into(),
            Allow::User => "user".into(),
            Allow::Admin => "admin".into(),
            Allow::Module(m) => format!("module {m}"),
            Allow::System => "system".into(),
        }
    }
}

/// Whether `ctx` may call an operation with these rules; denials say whether signing in could help.
pub fn check(rules: &[Allow], ctx: &RequestContext) -> Result<(), AccessDenied> {
    let admitted = rules.iter().any(|rule| match rule {
        Allow::Anyone => true,
        Allow::User => ctx.user().is_some(),
        Allow::Admin => ctx.user().is_some_and(|u| u.role == Role::Admin),
        Allow::Module(m) => ctx.origin.is_module(m),
        Allow::System => ctx.origin == Origin::System,
    });
    if admitted {
        Ok(())
    } else if ctx.user().is_none() && ctx.origin == Origin::Client {
        Err(AccessDenied::Unauthenticated)
    } else {
        Err(AccessDenied::Forbidden)
    }
}

/// Whether any caller arriving over `/internal` could pass these rules (system-only operations are not
/// served there at all).
pub fn reachable_over_http(rules: &[Allow]) -> bool {
    rules.iter().any(|r| *r != Allow::System)
}

/// `anyone`, `admin, module ordering`...: the rules as one line.
pub fn describe(rules: &[Allow]) -> String {
    rules
        .iter()
        .map(|r| r.describe())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::tests::user;

    #[test]
    fn module_operations_admit_only_the_named_module() {
        let rules = [Allow::Module("ordering")];
        assert!(check(&rules, &RequestContext::default().as_module("ordering")).is_ok());
        assert_eq!(
            check(
                &rules,
                &RequestContext::default().as_module("notifications")
            ),
            Err(AccessDenied::Forbidden)
        );
        assert_eq!(
            check(&rules, &RequestContext::default()),
            Err(AccessDenied::Unauthenticated)
        );
        assert_eq!(
            check(&rules, &user(Role::Admin)),
            Err(AccessDenied::Forbidden)
        );
        assert_eq!(
            check(&rules, &RequestContext::system()),
            Err(AccessDenied::Forbidden)
        );
    }

    #[test]
    fn user_rules_look_at_the_end_user_whoever_carries_the_call() {
        assert!(check(&[Allow::Admin], &user(Role::Admin)).is_ok());
        assert!(check(&[Allow::Admin], &user(Role::Admin).as_module("ordering")).is_ok());
        assert_eq!(
            check(&[Allow::Admin], &user(Role::Customer)),
            Err(AccessDenied::Forbidden)
        );
        assert!(check(&[Allow::User], &user(Role::Customer)).is_ok());
        assert!(check(&[Allow::Anyone], &RequestContext::default()).is_ok());
    }

    #[test]
    fn system_rules_are_never_reachable_over_http() {
        assert!(!reachable_over_http(&[Allow::System]));
        assert!(reachable_over_http(&[Allow::System, Allow::Admin]));
        assert!(check(&[Allow::System], &RequestContext::system()).is_ok());
    }
}
