//! Queue tokens as clients hold them: `v1.<payload>.<mac>`, where the payload is the token id
//! and the user id, and the MAC is HMAC-SHA256 under `TOKEN_SECRET`. A token cannot be forged
//! or moved to another user without the secret; verification is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 with `secret` absorbed, to clone per use: every token check, signature and
/// request id starts from it rather than hashing the key again (two SHA-256 blocks saved).
pub(crate) fn keyed_hmac(secret: &SecretString) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length")
}

const PREFIX: &str = "v1";

/// Signs and verifies queue tokens.
#[derive(Clone)]
pub struct TokenSigner {
    /// See [`keyed_hmac`].
    keyed: HmacSha256,
}

/// The ids a verified token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClaims {
    pub token_id: Uuid,
    pub user_id: Uuid,
}

impl TokenSigner {
    pub fn new(secret: SecretString) -> Self {
        Self {
            keyed: keyed_hmac(&secret),
        }
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    pub fn sign(&self, claims: TokenClaims) -> String {
        let mut payload = [0u8; 32];
        payload[..16].copy_from_slice(claims.token_id.as_bytes());
        payload[16..].copy_from_slice(claims.user_id.as_bytes());
        let mut mac = self.mac();
        mac.update(PREFIX.as_bytes());
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!(
            "{PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a well-formed token with a valid signature; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let mut parts = token.split('.');
        let (prefix, payload, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if prefix != PREFIX || parts.next().is_some() || payload.len() > 64 || tag.len() > 64 {
            return None;
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if payload.len() != 32 {
            return None;
        }
        let mut mac = self.mac();
        mac.update(PREFIX.as_bytes());
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?;
        Some(TokenClaims {
            token_id: Uuid::from_slice(&payload[..16]).ok()?,
            user_id: Uuid::from_slice(&payload[16..]).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> TokenSigner {
        TokenSigner::new(SecretString::from(secret.to_owned()))
    }

    #[test]
    fn signed_tokens_verify_and_tampering_fails() {
        let s = signer("an-example-secret-that-is-long-enough!!");
        let claims = TokenClaims {
            token_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
        };
        let token = s.sign(claims);
        assert_eq!(s.verify(&token), Some(claims));

        // Another user's id in the payload, with the original MAC.
        let other = s.sign(TokenClaims {
            token_id: claims.token_id,
            user_id: Uuid::new_v4(),
        });
        let forged = format!(
            "{}.{}",
            other.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(s.verify(&forged), None);

        // One flipped character anywhere in the MAC.
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.verify(&String::from_utf8(bytes).unwrap()), None);

        // Signed under another secret.
        assert_eq!(
            signer("a-different-secret-that-is-long-enough").verify(&token),
            None
        );
        assert_eq!(s.verify("garbage"), None);
        assert_eq!(s.verify(""), None);
        assert_eq!(s.verify(&format!("{token}.extra")), None);
    }
}
