//! Verifying access tokens locally with identity's public keys: no call to identity per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::context::{Role, UserCaller};
use crate::jwks::{Claims, Jwks};

/// Where the verifier gets the current public keys (identity in-process, or its JWKS over HTTP).
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    /// The current key set.
    async fn fetch_jwks(&self) -> Result<Jwks, String>;
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, badly signed, expired, or for another issuer or audience (401).
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// The key set could not be fetched (503).
    #[error("cannot fetch the token verification keys: {0}")]
    KeysUnavailable(String),
}

/// Issuer and audience every token must carry.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// Last successful fetch: keys older than `max_age` are refreshed.
    fetched_at: Option<Instant>,
    /// Last attempt, successful or not: attempts are at least `min_refetch` apart.
    attempted_at: Option<Instant>,
}

/// Verifies access tokens against a cached key set, refetching on an unknown `kid` (rate-limited) and
/// periodically.
pub struct TokenVerifier {
    source: Arc<dyn KeySource>,
    /// Built once: issuer, audience, required claims and the pinned algorithm never change.
    validation: Validation,
    cache: RwLock<KeyCache>,
    /// Single flight: one fetch at a time, and never while holding the cache lock.
    refresh: Mutex<()>,
    max_age: Duration,
    min_refetch: Duration,
}

impl TokenVerifier {
    /// A verifier that keeps keys for `max_age` and refetches on an unknown key at most once per
    /// `min_refetch`.
    pub fn new(source: Arc<dyn KeySource>, rules: TokenRules) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&rules.issuer]);
        validation.set_audience(&[&rules.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        TokenVerifier {
            source,
            validation,
            refresh: Mutex::new(()),
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
                attempted_at: None,
            }),
            max_age: Duration::from_secs(300),
            min_refetch: Duration::from_secs(10),
        }
    }

    /// The user a valid token stands for.
    pub async fn verify(&self, token: &str) -> Result<UserCaller, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        // Pin the algorithm: a token claiming anything but EdDSA is rejected before any key is looked at.
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("unexpected algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("missing kid".into()))?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let id = Uuid::parse_str(&data.claims.sub)
            .map_err(|_| TokenError::Invalid("sub is not a user id".into()))?;
        let role = Role::parse(&data.claims.role)
            .ok_or_else(|| TokenError::Invalid("unknown role".into()))?;
        Ok(UserCaller { id, role })
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let cached = {
            let cache = self.cache.read().await;
            let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
            match cache.keys.get(kid) {
                Some(k) if fresh => return Ok(k.clone()),
                other => other.cloned(),
            }
        };
        // A known but stale key keeps working while someone else refreshes; an unknown kid waits for the
        // refresh in flight (it may bring the key).
        let _flight = match &cached {
            Some(key) => match self.refresh.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(key.clone()),
            },
            None => self.refresh.lock().await,
        };
        {
            let cache = self.cache.read().await;
            let fresh = cache.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
            let key = cache.keys.get(kid);
            if let Some(k) = key.filter(|_| fresh) {
                return Ok(k.clone());
            }
            // Attempts are rate-limited: tokens with invented kids cannot make us hammer identity.
            if cache
                .attempted_at
                .is_some_and(|t| t.elapsed() < self.min_refetch)
            {
                return match key {
                    Some(k) => Ok(k.clone()),
                    None if cache.keys.is_empty() => Err(TokenError::KeysUnavailable(
                        "the last attempt to fetch them failed".into(),
                    )),
                    None => Err(TokenError::Invalid("unknown kid".into())),
                };
            }
        }
        let fetched = self.source.fetch_jwks().await;
        let mut cache = self.cache.write().await;
        cache.attempted_at = Some(Instant::now());
        match fetched {
            Ok(jwks) => {
                cache.keys = decoding_keys(&jwks);
                cache.fetched_at = cache.attempted_at;
            }
            // Keep serving the keys we have if identity is briefly unreachable.
            Err(e) if cache.keys.is_empty() => return Err(TokenError::KeysUnavailable(e)),
            Err(e) => tracing::warn!(error = %e, "could not refresh token keys; using cached keys"),
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| TokenError::Invalid("unknown kid".into()))
    }
}

fn decoding_keys(jwks: &Jwks) -> HashMap<String, DecodingKey> {
    jwks.keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
        .filter_map(|k| {
            DecodingKey::from_ed_components(&k.x)
                .ok()
                .map(|d| (k.kid.clone(), d))
        })
        .collect()
}
