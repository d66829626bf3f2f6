//! Viewer links: a signed, expiring, read-only capability to one tenant's audit trail, minted by an
//! operator to hand to the customer or to embed in the SaaS application.
//!
//! A link's token is `kvl_` + base64url(`TENANT.EXPIRES.ID`) + `.` + base64url(HMAC-SHA256), the
//! MAC over the part before the dot, under a key derived from the admin token's hash (HMAC with a
//! fixed label). So every relay sharing the configuration checks the same links, nothing is
//! stored per link, and rotating the admin token revokes every link at once. A link is refused
//! when its MAC is wrong (constant-time compare), when it is malformed, or from its expiry on.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The longest a link may live.
pub const MAX_LIFETIME_SECS: i64 = 30 * 86_400;

/// The label the link key is derived with.
const LABEL: &[u8] = b"klarity-audit viewer links v1";

/// A checked link: whose trail, until when, and its id (for the audit event of each use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The tenant whose trail it opens.
    pub tenant: String,
    /// When it expires (seconds since the epoch).
    pub expires: i64,
    /// Its id: 8 random hex digits, named in the audit events of its uses.
    pub id: String,
}

/// Signs and checks links.
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// The key of a relay whose admin token hashes to `admin_token_sha256`.
    pub fn derive(admin_token_sha256: &str) -> LinkKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(admin_token_sha256.as_bytes()).expect("HMAC takes any key");
        mac.update(LABEL);
        LinkKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(payload.as_bytes());
        mac
    }

    /// A link to `tenant`'s trail that expires at `expires` (seconds since the epoch).
    pub fn mint(&self, tenant: &str, expires: i64) -> (String, Link) {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let payload = URL_SAFE_NO_PAD.encode(format!("{tenant}.{expires}.{id}"));
        let tag = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        (format!("kvl_{payload}.{tag}"), Link { tenant: tenant.to_owned(), expires, id })
    }

    /// The link `token` is, at `now` (seconds since the epoch); else why it is refused.
    pub fn check(&self, token: &str, now: i64) -> Result<Link, Refusal> {
        let (payload, tag) =
            token.strip_prefix("kvl_").and_then(|rest| rest.split_once('.')).ok_or(Refusal::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refusal::Malformed)?;
        self.mac(payload).verify_slice(&tag).map_err(|_| Refusal::Forged)?;
        let text = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|b| String::from_utf8(b).ok());
        let mut parts = text.as_deref().unwrap_or_default().splitn(3, '.');
        let (Some(tenant), Some(expires), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Refusal::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| Refusal::Malformed)?;
        if now >= expires {
            return Err(Refusal::Expired { at: expires });
        }
        Ok(Link { tenant: tenant.to_owned(), expires, id: id.to_owned() })
    }
}

/// Why a link is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It is not a viewer link.
    Malformed,
    /// Its signature is not the relay's (changed, or signed under another admin token).
    Forged,
    /// It expired then (seconds since the epoch).
    Expired {
        /// When.
        at: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_tenant_until_it_expires_and_not_once_changed() {
        let key = LinkKey::derive("ab".repeat(32).as_str());
        let (token, link) = key.mint("acme", 1_000);
        assert_eq!(key.check(&token, 999), Ok(link.clone()));
        assert_eq!(key.check(&token, 1_000), Err(Refusal::Expired { at: 1_000 }), "refused from its expiry on");

        // Another tenant or a later expiry in the payload breaks the signature.
        let (_, tag) = token.split_once('.').unwrap();
        let other = format!("kvl_{}.{tag}", URL_SAFE_NO_PAD.encode(format!("other.1000.{}", link.id)));
        assert_eq!(key.check(&other, 0), Err(Refusal::Forged));
        let later = format!("kvl_{}.{tag}", URL_SAFE_NO_PAD.encode(format!("acme.99999.{}", link.id)));
        assert_eq!(key.check(&later, 0), Err(Refusal::Forged));

        // A relay with another admin token does not accept it; garbage is malformed.
        assert_eq!(LinkKey::derive("cd").check(&token, 0), Err(Refusal::Forged));
        for junk in ["", "kvl_", "kvl_abc", "kat_x.y", "kvl_!!.??"] {
            assert_eq!(key.check(junk, 0), Err(Refusal::Malformed), "{junk}");
        }
    }
}
