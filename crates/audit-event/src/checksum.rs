//! `eventDataChecksum` = base64(SHA-256(eventData bytes)), as the `PutAuditEvents` model defines it.

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

/// The checksum CloudTrail expects for these exact `eventData` bytes.
pub fn checksum(event_data: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(event_data))
}

/// Whether `claimed` is the checksum of `event_data`.
pub fn verify(event_data: &[u8], claimed: &str) -> bool {
    let mut digest = [0u8; 32];
    match STANDARD.decode_slice(claimed, &mut digest) {
        Ok(32) => digest[..] == Sha256::digest(event_data)[..],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the reference (§1.5), computed with
    /// `printf %s '{"version":"1.0"}' | openssl dgst -binary -sha256 | base64`.
    #[test]
    fn reference_vector() {
        let data = br#"{"version":"1.0"}"#;
        assert_eq!(checksum(data), "woI/t3bfqrSL+gajMAXQKmBJLYd2LNtmycQVX5f7ql0=");
        assert!(verify(data, "woI/t3bfqrSL+gajMAXQKmBJLYd2LNtmycQVX5f7ql0="));
    }

    #[test]
    fn mismatches_are_refused() {
        let data = br#"{"version":"1.0"}"#;
        assert!(!verify(br#"{"version":"1.1"}"#, &checksum(data)));
        assert!(!verify(data, "not base64!"));
        assert!(!verify(data, "AAAA"));
        assert!(!verify(data, ""));
    }
}
