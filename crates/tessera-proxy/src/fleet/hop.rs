//! The hop mark: what a node adds to a request it forwards to the image's owner, so that the
//! owner serves it as the client's (its address, whether it came over TLS, the public base
//! URL its answers must name) and never forwards it again.
//!
//! The mark is signed with the fleet's shared secret (HMAC-SHA256, `ring`), over the request's
//! method and path as well as the mark's fields, and it expires: a client cannot forge one,
//! change what one says, or replay one for another request or later than [`MAX_AGE_SECS`]. A
//! request whose mark does not verify is served as any client's request (the mark removed).
//!
//! On the wire, one header: `x-tessera-hop: v1 <unix seconds> <client ip or -> <0|1> <hex of
//! the public base> <hex of the signature>`.

use ring::hmac;
use std::net::IpAddr;

/// The header that carries the mark.
pub const HEADER: &str = "x-tessera-hop";

/// How old (or how far in the future, for clocks apart) a mark may be.
pub const MAX_AGE_SECS: u64 = 60;

/// What the forwarding node knew of the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    pub public_base: String,
}

/// The fleet's secret, ready to sign and verify.
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The mark for `hop` on the request `method path_and_query`, made at `now` (unix seconds).
    pub fn mark(&self, hop: &Hop, method: &str, path_and_query: &str, now: u64) -> String {
        let ip = hop
            .client_ip
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        let tls = if hop.tls { "1" } else { "0" };
        let base = hex(hop.public_base.as_bytes());
        let fields = format!("v1 {now} {ip} {tls} {base}");
        let tag = hmac::sign(
            &self.key,
            signed(&fields, method, path_and_query).as_bytes(),
        );
        format!("{fields} {}", hex(tag.as_ref()))
    }

    /// What a mark says, if it is this fleet's, for this request, and fresh at `now`.
    pub fn verify(&self, mark: &str, method: &str, path_and_query: &str, now: u64) -> Option<Hop> {
        let (fields, tag) = mark.rsplit_once(' ')?;
        let tag = unhex(tag)?;
        hmac::verify(
            &self.key,
            signed(fields, method, path_and_query).as_bytes(),
            &tag,
        )
        .ok()?;
        let mut parts = fields.split(' ');
        let (Some("v1"), Some(ts), Some(ip), Some(tls), Some(base), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let ts: u64 = ts.parse().ok()?;
        if ts.abs_diff(now) > MAX_AGE_SECS {
            return None;
        }
        Some(Hop {
            client_ip: match ip {
                "-" => None,
                ip => Some(ip.parse().ok()?),
            },
            tls: match tls {
                "1" => true,
                "0" => false,
                _ => return None,
            },
            public_base: String::from_utf8(unhex(base)?).ok()?,
        })
    }
}

/// The bytes signed: the mark's fields, then the request they are for.
fn signed(fields: &str, method: &str, path_and_query: &str) -> String {
    format!("{fields}\n{method}\n{path_and_query}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hop() -> Hop {
        Hop {
            client_ip: Some("203.0.113.7".parse().unwrap()),
            tls: true,
            public_base: "https://iiif.example.org".into(),
        }
    }

    #[test]
    fn a_mark_verifies_for_its_request_only() {
        let s = Signer::new(b"a secret of sixteen bytes");
        let mark = s.mark(&hop(), "GET", "/iiif/a/info.json", 1000);
        assert_eq!(
            s.verify(&mark, "GET", "/iiif/a/info.json", 1000),
            Some(hop())
        );
        assert_eq!(
            s.verify(&mark, "GET", "/iiif/a/info.json", 1060),
            Some(hop())
        );
        assert_eq!(
            s.verify(&mark, "GET", "/iiif/a/info.json", 1061),
            None,
            "expired"
        );
        assert_eq!(
            s.verify(&mark, "GET", "/iiif/b/info.json", 1000),
            None,
            "another path"
        );
        assert_eq!(
            s.verify(&mark, "HEAD", "/iiif/a/info.json", 1000),
            None,
            "another method"
        );
        let other = Signer::new(b"another secret, not the fleet's");
        assert_eq!(other.verify(&mark, "GET", "/iiif/a/info.json", 1000), None);
    }

    #[test]
    fn a_client_cannot_change_what_a_mark_says() {
        let s = Signer::new(b"a secret of sixteen bytes");
        let mark = s.mark(&hop(), "GET", "/x", 1000);
        let forged = mark.replace("203.0.113.7", "198.51.100.1");
        assert_eq!(s.verify(&forged, "GET", "/x", 1000), None);
        let no_tls = mark.replacen(" 1 ", " 0 ", 1);
        assert_eq!(s.verify(&no_tls, "GET", "/x", 1000), None);
    }

    proptest! {
        #[test]
        fn garbage_never_verifies_or_panics(mark in ".{0,200}", path in "/[a-z/]{0,20}") {
            let s = Signer::new(b"a secret of sixteen bytes");
            prop_assert_eq!(s.verify(&mark, "GET", &path, 1000), None);
        }

        #[test]
        fn every_mark_round_trips(
            ip in proptest::option::of(any::<std::net::Ipv4Addr>()),
            tls in any::<bool>(),
            base in "[ -~]{0,60}",
            now in 0u64..4_000_000_000,
        ) {
            let s = Signer::new(b"a secret of sixteen bytes");
            let hop = Hop { client_ip: ip.map(IpAddr::V4), tls, public_base: base };
            let mark = s.mark(&hop, "GET", "/p?q=1", now);
            prop_assert_eq!(s.verify(&mark, "GET", "/p?q=1", now), Some(hop));
        }
    }
}
