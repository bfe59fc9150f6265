//! `x-request-id`: one id per request, the same in the access log, upstream (IIPImage, a peer of
//! the fleet, any cluster) and the answer, so that one request can be followed through them.
//!
//! A client's or a front proxy's id is kept when it is a plausible one (1–64 letters, digits and
//! `-_.:`); any other is replaced, so a log line never carries what a client made up beyond
//! that. A new id is this process's random prefix and a counter: unique without a lock, and
//! cheap (no random numbers per request). Every request pays for this, so the id is written as
//! hex digits into a buffer on the stack, and looked up by a name parsed once.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

pub const HEADER: &str = "x-request-id";

/// [`HEADER`] as a parsed name: a lookup by `&str` parses the name every time.
static NAME: HeaderName = HeaderName::from_static(HEADER);

/// The id of `header`'s request, made and set first if it has none (or an implausible one).
pub fn ensure(header: &mut RequestHeader) {
    let kept = value(header)
        .and_then(|v| v.to_str().ok())
        .is_some_and(plausible);
    if !kept {
        let _ = header.insert_header(HEADER, generate());
    }
}

/// The request's id, after [`ensure`]; empty before.
pub fn of(header: &RequestHeader) -> &str {
    value(header).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The request's id as its header value (to copy it into another header without checking it
/// again), after [`ensure`]; `None` before.
pub fn value(header: &RequestHeader) -> Option<&HeaderValue> {
    header.headers.get(&NAME)
}

fn plausible(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn generate() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        let mut bytes = [0u8; 8];
        let random = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        match random {
            Ok(()) => u64::from_le_bytes(bytes),
            // No randomness: the process id and start time still tell processes apart.
            Err(_) => u64::from(std::process::id()) << 32 ^ now_nanos(),
        }
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // As `format!("{:016x}{n:08x}", *PREFIX)` writes it.
    let mut id = [0u8; 32];
    let len = write_hex(&mut id, *PREFIX, 16);
    let len = len + write_hex(&mut id[len..], n, 8);
    HeaderValue::from_bytes(&id[..len]).expect("hex digits are a valid header value")
}

/// `n` in lowercase hex, at least `min_digits` (≤ 16) long, zeros first, at the start of `out`;
/// returns how many bytes it wrote (`out` must hold that many: 16 always does).
fn write_hex(out: &mut [u8], n: u64, min_digits: usize) -> usize {
    let digits = (16 - n.leading_zeros() as usize / 4).max(min_digits);
    for (i, byte) in out[..digits].iter_mut().enumerate() {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    digits
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: Option<&str>) -> RequestHeader {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        if let Some(id) = id {
            h.insert_header(HEADER, id).unwrap();
        }
        h
    }

    #[test]
    fn a_plausible_id_is_kept_and_anything_else_replaced() {
        let mut h = request(Some("front-7f3a.2:1"));
        ensure(&mut h);
        assert_eq!(of(&h), "front-7f3a.2:1");
        for bad in ["", "with space", "<script>", &"x".repeat(65)] {
            let mut h = request(Some(bad));
            ensure(&mut h);
            assert_ne!(of(&h), bad);
            assert!(plausible(of(&h)), "{}", of(&h));
        }
    }

    #[test]
    fn hex_is_written_as_format_writes_it() {
        for (n, min) in [
            (0, 8),
            (0xab, 8),
            (u64::from(u32::MAX) + 1, 8),
            (u64::MAX, 16),
            (1, 16),
        ] {
            let mut out = [0u8; 16];
            let len = write_hex(&mut out, n, min);
            assert_eq!(&out[..len], format!("{n:0min$x}").as_bytes());
        }
    }

    #[test]
    fn new_ids_differ() {
        let (mut a, mut b) = (request(None), request(None));
        ensure(&mut a);
        ensure(&mut b);
        assert_ne!(of(&a), of(&b));
        assert_eq!(of(&a).len(), 24);
    }
}
