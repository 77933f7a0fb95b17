//! Request ids that prove the API issued them, so a submission needs no database write.
//!
//! A reservation submitted without an `Idempotency-Key` is not recorded anywhere before the
//! workers decide it: the broker's acknowledgement is what makes its 202 durable. Its status
//! must still tell "pending" from "never issued" on any API instance, so the id carries a MAC:
//!
//! | bytes | content |
//! |---|---|
//! | 0–5 | milliseconds since the Unix epoch (time-ordered, like UUIDv7, for index locality) |
//! | 6–9 | the version nibble 8 and the RFC 9562 variant bits, with 26 random bits between them |
//! | 10–15 | the first 48 bits of HMAC-SHA256 under `TOKEN_SECRET` over a label, the request kind, the user id and bytes 0–9 |
//!
//! An id verifies only for the user it was issued to, so another user's pending request looks
//! like an unknown one (404), and guessing a valid id for oneself takes 2^47 tries on average,
//! which would only show a PENDING that never ends. Two users cannot collide on an id (their
//! MACs differ); one user's two ids collide only within one millisecond, with odds of 2^-26.

use hmac::Mac;
use rand::RngCore;
use seatline_shared::domain::RequestKind;
use secrecy::SecretString;
use uuid::Uuid;

use crate::tokens::{keyed_hmac, HmacSha256};

/// Separates these MACs from the queue tokens' MACs under the same secret.
const LABEL: &[u8] = b"seatline.request-id.v1";
const VERSION: u8 = 8;

/// Issues and verifies self-authenticating request ids.
#[derive(Clone)]
pub struct RequestIds {
    /// See [`keyed_hmac`].
    keyed: HmacSha256,
}

impl RequestIds {
    pub fn new(secret: &SecretString) -> Self {
        Self {
            keyed: keyed_hmac(secret),
        }
    }

    /// A new id for a request of `kind` by `user_id`.
    pub fn issue(&self, kind: RequestKind, user_id: Uuid) -> Uuid {
        let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        rand::thread_rng().fill_bytes(&mut bytes[6..10]);
        bytes[6] = (VERSION << 4) | (bytes[6] & 0x0f);
        bytes[8] = 0x80 | (bytes[8] & 0x3f);
        let tag = self.tag(kind, user_id, &bytes);
        bytes[10..].copy_from_slice(&tag);
        Uuid::from_bytes(bytes)
    }

    /// Whether this API (or another sharing its secret) issued `id` for `kind` by `user_id`.
    pub fn issued(&self, id: Uuid, kind: RequestKind, user_id: Uuid) -> bool {
        let bytes = id.as_bytes();
        if id.get_version_num() != usize::from(VERSION)
            || id.get_variant() != uuid::Variant::RFC4122
        {
            return false;
        }
        // Constant-time over the 6 bytes kept.
        self.mac(kind, user_id, bytes)
            .verify_truncated_left(&bytes[10..])
            .is_ok()
    }

    fn mac(&self, kind: RequestKind, user_id: Uuid, bytes: &[u8; 16]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(LABEL);
        mac.update(kind.as_str().as_bytes());
        mac.update(user_id.as_bytes());
        mac.update(&bytes[..10]);
        mac
    }

    fn tag(&self, kind: RequestKind, user_id: Uuid, bytes: &[u8; 16]) -> [u8; 6] {
        let full = self.mac(kind, user_id, bytes).finalize().into_bytes();
        let mut tag = [0u8; 6];
        tag.copy_from_slice(&full[..6]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(secret: &str) -> RequestIds {
        RequestIds::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn an_issued_id_verifies_only_for_its_user_kind_and_secret() {
        let signer = ids("an-example-secret-that-is-long-enough!!");
        let user = Uuid::new_v4();
        let id = signer.issue(RequestKind::Reservation, user);
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert!(signer.issued(id, RequestKind::Reservation, user));

        assert!(!signer.issued(id, RequestKind::Reservation, Uuid::new_v4()));
        assert!(!signer.issued(id, RequestKind::Payment, user));
        assert!(!ids("a-different-secret-that-is-long-enough").issued(
            id,
            RequestKind::Reservation,
            user
        ));
        assert!(!signer.issued(Uuid::now_v7(), RequestKind::Reservation, user));
        assert!(!signer.issued(Uuid::nil(), RequestKind::Reservation, user));
    }

    #[test]
    fn any_changed_bit_fails_verification() {
        let signer = ids("an-example-secret-that-is-long-enough!!");
        let user = Uuid::new_v4();
        let id = signer.issue(RequestKind::Reservation, user);
        for bit in 0..128 {
            let mut bytes = *id.as_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !signer.issued(Uuid::from_bytes(bytes), RequestKind::Reservation, user),
                "bit {bit} flipped still verifies"
            );
        }
    }

    #[test]
    fn ids_are_time_ordered_and_distinct() {
        let signer = ids("an-example-secret-that-is-long-enough!!");
        let user = Uuid::new_v4();
        let before = chrono::Utc::now().timestamp_millis() as u64;
        let issued: Vec<Uuid> = (0..10_000)
            .map(|_| signer.issue(RequestKind::Reservation, user))
            .collect();
        let after = chrono::Utc::now().timestamp_millis() as u64;
        let distinct: std::collections::HashSet<Uuid> = issued.iter().copied().collect();
        assert_eq!(distinct.len(), issued.len());
        for id in &issued {
            let mut millis = [0u8; 8];
            millis[2..].copy_from_slice(&id.as_bytes()[..6]);
            let millis = u64::from_be_bytes(millis);
            assert!((before..=after).contains(&millis));
        }
    }
}
