//! Token signing (here) and verification (the kernel's `TokenVerifier`, as every module uses it), together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use shop_kernel::Role;
use shop_kernel::auth::{KeySource, TokenError, TokenRules, TokenVerifier};
use shop_kernel::jwks::{Claims, Jwks};

use crate::keys::SigningKey;

struct FakeIdentity {
    jwks: Jwks,
    fetches: AtomicUsize,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl KeySource for FakeIdentity {
    async fn fetch_jwks(&self) -> Result<Jwks, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err("identity is down".into())
        } else {
            Ok(self.jwks.clone())
        }
    }
}

fn setup() -> Result<(SigningKey, Arc<FakeIdentity>, TokenVerifier), String> {
    let (key, _) = SigningKey::generate()?;
    let source = Arc::new(FakeIdentity {
        jwks: Jwks {
            keys: vec![key.public_jwk().clone()],
        },
        fetches: AtomicUsize::new(0),
        down: AtomicBool::new(false),
    });
    let rules = TokenRules {
        issuer: "shop".into(),
        audience: "shop".into(),
    };
    let verifier = TokenVerifier::new(source.clone(), rules);
    Ok((key, source, verifier))
}

fn claims(iss: &str, aud: &str, exp_in: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: iss.into(),
        aud: aud.into(),
        sub: uuid::Uuid::now_v7().to_string(),
        role: "admin".into(),
        iat: now as u64,
        exp: (now + exp_in) as u64,
    }
}

#[tokio::test]
async fn a_signed_token_verifies_and_keys_are_fetched_once() -> Result<(), String> {
    let (key, source, verifier) = setup()?;
    for _ in 0..5 {
        let user = verifier
            .verify(&key.sign(&claims("shop", "shop", 60))?)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(user.role, Role::Admin);
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1, "keys are cached");
    Ok(())
}

#[tokio::test]
async fn wrong_issuer_audience_expiry_or_key_are_invalid() -> Result<(), String> {
    let (key, _, verifier) = setup()?;
    let invalid = |r: Result<_, TokenError>| matches!(r, Err(TokenError::Invalid(_)));
    assert!(invalid(
        verifier
            .verify(&key.sign(&claims("other", "shop", 60))?)
            .await
    ));
    assert!(invalid(
        verifier
            .verify(&key.sign(&claims("shop", "other", 60))?)
            .await
    ));
    assert!(invalid(
        verifier
            .verify(&key.sign(&claims("shop", "shop", -120))?)
            .await
    ));
    let (stranger, _) = SigningKey::generate()?;
    assert!(invalid(
        verifier
            .verify(&stranger.sign(&claims("shop", "shop", 60))?)
            .await
    ));
    Ok(())
}

#[tokio::test]
async fn unknown_kids_do_not_cause_a_fetch_storm() -> Result<(), String> {
    let (_, source, verifier) = setup()?;
    let (stranger, _) = SigningKey::generate()?;
    let token = stranger.sign(&claims("shop", "shop", 60))?;
    for _ in 0..20 {
        assert!(verifier.verify(&token).await.is_err());
    }
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "refetches are rate-limited"
    );
    Ok(())
}

#[tokio::test]
async fn keys_are_unavailable_only_when_none_were_ever_fetched() -> Result<(), String> {
    let (key, source, verifier) = setup()?;
    source.down.store(true, Ordering::SeqCst);
    let token = key.sign(&claims("shop", "shop", 60))?;
    assert!(matches!(
        verifier.verify(&token).await,
        Err(TokenError::KeysUnavailable(_))
    ));
    Ok(())
}
