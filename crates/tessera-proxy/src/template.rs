//! Templates such as `/fcgi-bin/iipsrv.fcgi?IIIF={local_path}/{iiif}` or `{image}`: literal text
//! with `{name}` placeholders filled from a route's captures.
//!
//! Templates are parsed once when the config is built, and every placeholder is checked against
//! the captures the route defines, so rendering at request time cannot fail.
//!
//! Captures are raw path text. A capture placed after a `?` lands in a query string, where
//! `&`, `#`, `+` and `;` would start a new parameter or fragment: there they are
//! percent-encoded, so `/img/x&FIF=/etc/passwd` cannot add a parameter to `?IIIF={image}`.

use crate::captures::Captures;
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture { name: String, in_query: bool },
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// Read a capture name after its `{`, through the closing `}`, and check it. `what` names the
/// text being parsed in error messages (`template "..."`, `path pattern "..."`).
pub(crate) fn read_capture_name(
    chars: &mut impl Iterator<Item = char>,
    what: &str,
) -> Result<String, String> {
    let mut name = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c) => name.push(c),
            None => return Err(format!("{what}: unclosed '{{'")),
        }
    }
    if !is_valid_name(&name) {
        return Err(format!("{what}: {{{name}}} is not a valid capture name"));
    }
    Ok(name)
}

/// Whether `name` is a valid capture name: ASCII letters, digits and `_`, not starting with a digit.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Append `value`, percent-encoding the characters that delimit query parameters.
fn push_query_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            '+' => out.push_str("%2B"),
            ';' => out.push_str("%3B"),
            c => out.push(c),
        }
    }
}

impl Template {
    /// Parse `source`. `{{` and `}}` stand for literal braces.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name = read_capture_name(&mut chars, &format!("template {source:?}"))?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    let in_query = parts
                        .iter()
                        .any(|p| matches!(p, Part::Literal(l) if l.contains('?')));
                    parts.push(Part::Capture { name, in_query });
                }
                '}' => {
                    return Err(format!(
                        "template {source:?}: unmatched '}}' (write '}}}}' for a literal brace)"
                    ))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// The capture names this template uses.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Capture { name, .. } => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Check that every placeholder names one of `known`; the error names the first that does not.
    pub fn check(&self, known: &BTreeSet<String>) -> Result<(), String> {
        for name in self.captures() {
            if !known.contains(name) {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                return Err(format!(
                    "template {:?} uses {{{name}}}, which the route does not capture (captures: {})",
                    self.source,
                    if list.is_empty() { "none".to_string() } else { list.join(", ") }
                ));
            }
        }
        Ok(())
    }

    /// Fill the placeholders. A capture the request lacks renders as empty text.
    pub fn render(&self, captures: &Captures) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Capture { name, in_query } => {
                    let value = captures.get(name).unwrap_or("");
                    if *in_query {
                        push_query_escaped(&mut out, value);
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_captures() {
        let t = Template::parse("/fcgi?IIIF={image}/{iiif}").unwrap();
        let mut c = Captures::default();
        c.push("image", "a/b");
        c.push("iiif", "full/max/0/default.jpg");
        assert_eq!(t.render(&c), "/fcgi?IIIF=a/b/full/max/0/default.jpg");
        assert_eq!(t.captures().collect::<Vec<_>>(), vec!["image", "iiif"]);
    }

    #[test]
    fn captures_in_a_query_cannot_add_parameters() {
        let t = Template::parse("/fcgi/{id}?IIIF={id}/{rest}").unwrap();
        let mut c = Captures::default();
        c.push("id", "a&FIF=x#y");
        c.push("rest", "full/max/0/default.jpg");
        assert_eq!(
            t.render(&c),
            "/fcgi/a&FIF=x#y?IIIF=a%26FIF=x%23y/full/max/0/default.jpg"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{unclosed").is_err());
        assert!(Template::parse("{1abc}").is_err());
        assert!(Template::parse("a}b").is_err());
        assert_eq!(
            Template::parse("{{x}}")
                .unwrap()
                .render(&Captures::default()),
            "{x}"
        );
    }

    #[test]
    fn check_names_unknown_capture() {
        let t = Template::parse("{image}/{nope}").unwrap();
        let known: BTreeSet<String> = ["image".to_string()].into();
        let err = t.check(&known).unwrap_err();
        assert!(err.contains("{nope}"), "{err}");
    }
}
