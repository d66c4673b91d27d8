//! The Ed25519 key that signs access tokens, and its public half as a JWK.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use shop_kernel::jwks::{Claims, Jwk};

/// PKCS#8 v1 wrapping of a raw Ed25519 seed (RFC 8410): a fixed prefix, then the 32 seed bytes.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The token-signing key.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from its 32-byte seed, base64url-encoded (the form of `SHOP_JWT_SIGNING_KEY`).
    pub fn from_seed_base64(seed: &str) -> Result<SigningKey, String> {
        let seed = URL_SAFE_NO_PAD
            .decode(seed.trim().trim_end_matches('='))
            .map_err(|_| "the signing key is not base64url".to_string())?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| "the signing key must be a 32-byte Ed25519 seed".to_string())?;
        SigningKey::from_seed(&seed)
    }

    fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, String> {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(seed);
        let encoding = EncodingKey::from_ed_der(&der);
        let public = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .map_err(|e| format!("invalid Ed25519 key: {e}"))?;
        let AlgorithmParameters::OctetKeyPair(params) = &public.algorithm else {
            return Err("unexpected key type".into());
        };
        // RFC 7638 thumbprint: a stable kid that changes exactly when the key does.
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("cannot compute key id: {e}"))?;
        Ok(SigningKey {
            encoding,
            jwk: Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: params.x.clone(),
                kid,
                alg: "EdDSA".into(),
                use_: "sig".into(),
            },
        })
    }

    /// A new random key and its base64url seed.
    pub fn generate() -> Result<(SigningKey, String), String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        Ok((SigningKey::from_seed(&seed)?, URL_SAFE_NO_PAD.encode(seed)))
    }

    /// The configured key if given; else the one kept in `path`, generated (owner-only) on first use.
    pub fn load_or_create(configured: Option<&str>, path: &Path) -> Result<SigningKey, String> {
        if let Some(seed) = configured {
            return SigningKey::from_seed_base64(seed);
        }
        match std::fs::read_to_string(path) {
            Ok(seed) => {
                SigningKey::from_seed_base64(&seed).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, seed) = SigningKey::generate()?;
                match publish_secret(path, &seed) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), kid = %key.jwk.kid, "generated a token signing key");
                        Ok(key)
                    }
                    // Another instance sharing the data dir generated one first: use that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let seed = std::fs::read_to_string(path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        SigningKey::from_seed_base64(&seed)
                            .map_err(|e| format!("{}: {e}", path.display()))
                    }
                    Err(e) => Err(format!("cannot write {}: {e}", path.display())),
                }
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The public key as published in the JWKS.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs claims into a compact JWT with this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// Writes `content` to `path` (owner-only) without ever exposing a partial file or replacing an existing
/// one: it is written beside the target, then hard-linked into place.
fn publish_secret(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, content.as_bytes()).and_then(|_| file.sync_all())
        })
        .and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_seed_and_keeps_its_kid() -> Result<(), String> {
        let (key, seed) = SigningKey::generate()?;
        let again = SigningKey::from_seed_base64(&seed)?;
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert_eq!(key.public_jwk().x.len(), 43, "32 bytes in base64url");
        Ok(())
    }

    #[test]
    fn a_key_kept_in_the_data_dir_is_generated_once_and_reused() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("shop-key-{}", uuid::Uuid::now_v7().simple()));
        let path = dir.join("jwt-signing-key");
        let first = SigningKey::load_or_create(None, &path)?;
        let again = SigningKey::load_or_create(None, &path)?;
        assert_eq!(first.public_jwk(), again.public_jwk());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map_err(|e| e.to_string())?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
        }
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn malformed_seeds_are_rejected() {
        assert!(SigningKey::from_seed_base64("not base64!").is_err());
        assert!(SigningKey::from_seed_base64("c2hvcnQ").is_err());
    }
}
