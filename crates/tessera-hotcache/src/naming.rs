//! File names in the cache: a hash of the origin and key, plus the suffix the image server needs.
//!
//! IIPImage picks its decoder by the file's suffix (`.jp2`, `.tif`), and it receives the path in
//! a URL, where `/`, `%` or `?` in a name would be read as something else. A hex digest avoids
//! all of that, keeps every name the same length, and needs no escaping rules. The index is
//! rebuilt from these names at start; the key is not needed to rebuild it.

use sha2::{Digest, Sha256};

/// The file name for `key` of the origin `origin`, ending in `suffix` (e.g. `.jp2`).
pub fn file_name(origin: &str, key: &str, suffix: &str) -> String {
    let mut h = Sha256::new();
    h.update(origin.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut name = String::with_capacity(32 + suffix.len());
    for b in &digest[..16] {
        name.push_str(&format!("{b:02x}"));
    }
    name.push_str(suffix);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_distinct_and_safe() {
        let a = file_name("masters", "2/1/b001", ".jp2");
        assert_eq!(a, file_name("masters", "2/1/b001", ".jp2"));
        assert_ne!(a, file_name("other", "2/1/b001", ".jp2"));
        assert_ne!(a, file_name("masters", "2/1/b002", ".jp2"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(file_name("ab", "c", ""), file_name("a", "bc", ""));
        assert_eq!(a.len(), 36);
        assert!(a.ends_with(".jp2"));
        assert!(a[..32].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
