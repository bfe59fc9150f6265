//! `s.json`: the sizes of an image's pre-made thumbnails, as DLCS writes them beside the JPEGs:
//! `{"o": [[w, h], …], "a": [[w, h], …]}` — sizes anyone may see (`o`, open) and sizes only an
//! authorised request may see (`a`).

use serde::Deserialize;

/// One pre-made thumbnail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thumb {
    pub width: u32,
    pub height: u32,
    /// Listed under `a`: served only to authorised requests.
    pub auth: bool,
}

impl Thumb {
    /// The longest side, which names the thumbnail's object (`{longest_edge}.jpg`).
    pub fn longest_edge(&self) -> u32 {
        self.width.max(self.height)
    }

    fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// An image's thumbnails, smallest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbSizes {
    thumbs: Vec<Thumb>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    o: Vec<[u32; 2]>,
    #[serde(default)]
    a: Vec<[u32; 2]>,
}

/// The most sizes one listing may hold; DLCS writes four or five.
const MAX_SIZES: usize = 256;

impl ThumbSizes {
    /// Parse `s.json`. Zero sides, absurd counts and anything that is not the format above are
    /// refused with the reason. A size listed as both open and auth-only is open.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !value.is_object() {
            return Err("not a JSON object".into());
        }
        let raw: Raw = serde_json::from_value(value).map_err(|e| e.to_string())?;
        if raw.o.len() + raw.a.len() > MAX_SIZES {
            return Err(format!("more than {MAX_SIZES} sizes"));
        }
        let mut thumbs: Vec<Thumb> = Vec::new();
        for (list, auth) in [(&raw.o, false), (&raw.a, true)] {
            for &[width, height] in list {
                if width == 0 || height == 0 {
                    return Err(format!("size {width}x{height} has no pixels"));
                }
                if !thumbs
                    .iter()
                    .any(|t| (t.width, t.height) == (width, height))
                {
                    thumbs.push(Thumb {
                        width,
                        height,
                        auth,
                    });
                }
            }
        }
        thumbs.sort_by_key(|t| (t.area(), t.width));
        Ok(Self { thumbs })
    }

    /// The thumbnails a request may see, smallest first.
    pub fn visible(&self, authorised: bool) -> Vec<Thumb> {
        self.thumbs
            .iter()
            .filter(|t| authorised || !t.auth)
            .copied()
            .collect()
    }

    /// Whether some sizes are auth-only.
    pub fn has_auth_sizes(&self) -> bool {
        self.thumbs.iter().any(|t| t.auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dlcs_listings() {
        let s = ThumbSizes::parse(
            br#"{"o":[[1024,768],[400,300],[200,150],[100,75]],"a":[[2048,1536]]}"#,
        )
        .unwrap();
        let open: Vec<_> = s.visible(false).iter().map(|t| t.width).collect();
        assert_eq!(open, [100, 200, 400, 1024]);
        assert_eq!(s.visible(true).last().unwrap().width, 2048);
        assert!(s.visible(true).last().unwrap().auth);
        assert!(s.has_auth_sizes());
        assert_eq!(s.visible(false)[3].longest_edge(), 1024);
    }

    #[test]
    fn missing_lists_are_empty_and_duplicates_stay_open() {
        let s = ThumbSizes::parse(br#"{"o":[[200,150]],"a":[[200,150]]}"#).unwrap();
        assert_eq!(s.visible(false).len(), 1);
        assert!(!s.has_auth_sizes());
        assert!(ThumbSizes::parse(br#"{}"#)
            .unwrap()
            .visible(true)
            .is_empty());
    }

    #[test]
    fn refuses_malformed_listings() {
        for bad in [
            &b"not json"[..],
            br#"{"o":[[0,10]]}"#,
            br#"{"o":[[10]]}"#,
            br#"{"o":[[-1,10]]}"#,
            br#"{"o":"200"}"#,
            br#"{"sizes":[]}"#,
            br#"[]"#,
        ] {
            assert!(
                ThumbSizes::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
