//! Path patterns: `/iiif-img/{customer}/{space}/{image}/{iiif*}`.
//!
//! A pattern is a list of `/`-separated segments. A segment is literal text with `{name}`
//! captures in it (`{quality}.{format}` is one segment); a capture takes at least one character
//! and never a `/`. The last segment may be a single `{name*}`, which takes the rest of the path,
//! slashes included, and may be empty (`/a/{rest*}` matches `/a`, `/a/` and `/a/b/c`).
//! Matching is on the raw path, before percent-decoding, so `%2F` inside an identifier stays in
//! one segment.

use crate::captures::Captures;
use crate::template::{is_valid_name, read_capture_name};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    parts: Vec<Part>,
}

/// A compiled path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    rest: Option<String>,
}

impl PathPattern {
    pub fn parse(source: &str) -> Result<Self, String> {
        let body = source
            .strip_prefix('/')
            .ok_or_else(|| format!("path pattern {source:?} must start with '/'"))?;
        let raw: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::new();
        let mut rest = None;
        let mut names = BTreeSet::new();
        for (i, seg) in raw.iter().enumerate() {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("*}")) {
                if i + 1 != raw.len() {
                    return Err(format!(
                        "path pattern {source:?}: {{{name}*}} must be the last segment"
                    ));
                }
                if !is_valid_name(name) {
                    return Err(format!(
                        "path pattern {source:?}: {name:?} is not a valid capture name"
                    ));
                }
                if !names.insert(name.to_string()) {
                    return Err(format!(
                        "path pattern {source:?}: capture {{{name}}} appears twice"
                    ));
                }
                rest = Some(name.to_string());
                continue;
            }
            let parts = parse_segment(source, seg)?;
            for p in &parts {
                if let Part::Capture(n) = p {
                    if !names.insert(n.clone()) {
                        return Err(format!(
                            "path pattern {source:?}: capture {{{n}}} appears twice"
                        ));
                    }
                }
            }
            segments.push(Segment { parts });
        }
        Ok(Self { segments, rest })
    }

    /// The names this pattern captures.
    pub fn capture_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .segments
            .iter()
            .flat_map(|s| s.parts.iter())
            .filter_map(|p| match p {
                Part::Capture(n) => Some(n.clone()),
                Part::Literal(_) => None,
            })
            .collect();
        names.extend(self.rest.clone());
        names
    }

    /// Match `path` (no query string). On success the captures are appended to `out`; on failure
    /// `out` is left as it was.
    pub fn matches(&self, path: &str, out: &mut Captures) -> bool {
        let start = out.len();
        let ok = self.match_inner(path, out);
        if !ok {
            out.truncate(start);
        }
        ok
    }

    fn match_inner(&self, path: &str, out: &mut Captures) -> bool {
        let Some(mut remaining) = path.strip_prefix('/') else {
            return false;
        };
        let count = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            let last = i + 1 == count;
            let (text, after) = match remaining.find('/') {
                Some(idx) => (&remaining[..idx], Some(&remaining[idx + 1..])),
                None => (remaining, None),
            };
            if !match_parts(&seg.parts, text, out) {
                return false;
            }
            match after {
                Some(after) => remaining = after,
                None if last => remaining = "",
                None => return false,
            }
            if last {
                return match &self.rest {
                    Some(name) => {
                        let rest = if after.is_some() { remaining } else { "" };
                        out.push(name, rest);
                        true
                    }
                    None => after.is_none(),
                };
            }
        }
        // Only a rest capture (pattern `/{rest*}`) or the bare pattern `/`.
        match &self.rest {
            Some(name) => {
                out.push(name, remaining);
                true
            }
            None => remaining.is_empty(),
        }
    }
}

fn parse_segment(source: &str, seg: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let name = read_capture_name(&mut chars, &format!("path pattern {source:?}"))?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                } else if matches!(parts.last(), Some(Part::Capture(_))) {
                    return Err(format!(
                        "path pattern {source:?}: two captures need literal text between them"
                    ));
                }
                parts.push(Part::Capture(name));
            }
            '}' => return Err(format!("path pattern {source:?}: unmatched '}}'")),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// Match one segment's parts against `text`. A capture takes at least one character; when a
/// literal follows it, each occurrence of that literal is tried from the left.
fn match_parts(parts: &[Part], text: &str, out: &mut Captures) -> bool {
    match parts.split_first() {
        None => text.is_empty(),
        Some((Part::Literal(l), rest)) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| match_parts(rest, t, out)),
        Some((Part::Capture(name), rest)) => match rest.first() {
            None => {
                if text.is_empty() {
                    return false;
                }
                out.push(name, text);
                true
            }
            Some(Part::Literal(next)) => {
                // A capture takes at least one character (not byte).
                let mut from = text.chars().next().map_or(1, char::len_utf8);
                while from <= text.len() {
                    let Some(found) = text.get(from..).and_then(|t| t.find(next.as_str())) else {
                        return false;
                    };
                    let at = from + found;
                    let mark = out.len();
                    out.push(name, &text[..at]);
                    if match_parts(rest, &text[at..], out) {
                        return true;
                    }
                    out.truncate(mark);
                    from = at + 1;
                    while from <= text.len() && !text.is_char_boundary(from) {
                        from += 1;
                    }
                }
                false
            }
            Some(Part::Capture(_)) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let p = PathPattern::parse(pattern).unwrap();
        let mut c = Captures::default();
        p.matches(path, &mut c).then(|| {
            c.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn literal_paths() {
        assert_eq!(caps("/", "/"), pairs(&[]));
        assert_eq!(caps("/a/b", "/a/b"), pairs(&[]));
        assert_eq!(caps("/a/b", "/a/b/"), None);
        assert_eq!(caps("/a/b", "/a"), None);
        assert_eq!(caps("/a", "a"), None);
    }

    #[test]
    fn named_segments_and_rest() {
        assert_eq!(
            caps(
                "/iiif-img/{customer}/{space}/{image}/{iiif*}",
                "/iiif-img/2/1/abc/full/max/0/default.jpg"
            ),
            pairs(&[
                ("customer", "2"),
                ("space", "1"),
                ("image", "abc"),
                ("iiif", "full/max/0/default.jpg")
            ])
        );
        assert_eq!(caps("/a/{rest*}", "/a"), pairs(&[("rest", "")]));
        assert_eq!(caps("/a/{rest*}", "/a/"), pairs(&[("rest", "")]));
        assert_eq!(caps("/a/{rest*}", "/ab"), None);
        assert_eq!(caps("/{all*}", "/x/y"), pairs(&[("all", "x/y")]));
        assert_eq!(
            caps("/a/{id}", "/a/"),
            None,
            "a capture takes at least one character"
        );
        assert_eq!(
            caps("/a/{id}", "/a/x/y"),
            None,
            "a capture never takes a slash"
        );
    }

    #[test]
    fn captures_within_a_segment() {
        assert_eq!(
            caps("/i/{size}/{quality}.{format}", "/i/max/default.jpg"),
            pairs(&[("size", "max"), ("quality", "default"), ("format", "jpg")])
        );
        assert_eq!(
            caps("/i/{quality}.{format}", "/i/a.b.c"),
            pairs(&[("quality", "a"), ("format", "b.c")])
        );
        assert_eq!(
            caps("/i/{quality}.jpg", "/i/a.b.jpg"),
            pairs(&[("quality", "a.b")])
        );
        assert_eq!(caps("/i/{quality}.{format}", "/i/.jpg"), None);
        assert_eq!(caps("/i/v{n}", "/i/v2"), pairs(&[("n", "2")]));
    }

    #[test]
    fn bad_patterns() {
        assert!(PathPattern::parse("a/b").is_err());
        assert!(PathPattern::parse("/{rest*}/x").is_err());
        assert!(PathPattern::parse("/{a}{b}").is_err());
        assert!(PathPattern::parse("/{a}/{a}").is_err());
        assert!(PathPattern::parse("/{a").is_err());
        assert!(PathPattern::parse("/{}").is_err());
    }

    #[test]
    fn lists_capture_names() {
        let p = PathPattern::parse("/x/{a}/{b}.{c}/{d*}").unwrap();
        assert_eq!(
            p.capture_names().into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c", "d"]
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No path, however odd, makes matching panic; and a failed match leaves no captures.
        #[test]
        fn matching_never_panics(path in "\\PC{0,40}", pattern_idx in 0usize..5) {
            let patterns = ["/", "/{a}/{b*}", "/x/{q}.{f}", "/{a}.jpg/{r*}", "/i/{id}/info.json"];
            let p = PathPattern::parse(patterns[pattern_idx]).unwrap();
            let mut c = Captures::default();
            if !p.matches(&path, &mut c) {
                prop_assert!(c.is_empty());
            }
        }

        /// Segment captures put back together give the path they came from.
        #[test]
        fn captures_rebuild_the_path(a in "[^/]{1,8}", b in "[^/.]{1,8}", c in "[^/]{1,8}", rest in "[a-z/]{0,12}") {
            let p = PathPattern::parse("/{a}/{b}.{c}/{rest*}").unwrap();
            let path = format!("/{a}/{b}.{c}/{rest}");
            let mut caps = Captures::default();
            prop_assert!(p.matches(&path, &mut caps));
            let rebuilt = format!(
                "/{}/{}.{}/{}",
                caps.get("a").unwrap(), caps.get("b").unwrap(), caps.get("c").unwrap(), caps.get("rest").unwrap()
            );
            prop_assert_eq!(rebuilt, path);
        }

        /// Parsing any pattern text returns a result, never a panic.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,30}") {
            let _ = PathPattern::parse(&text);
            let _ = crate::template::Template::parse(&text);
        }
    }
}
