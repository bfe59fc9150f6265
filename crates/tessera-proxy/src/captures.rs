//! The named values a route's path pattern captured from one request.

/// Captures in pattern order. Values are the raw (still percent-encoded) path text, so a template
/// that puts them back into an upstream path forwards exactly what the client sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captures {
    values: Vec<(String, String)>,
}

impl Captures {
    pub fn push(&mut self, name: &str, value: &str) {
        self.values.push((name.to_string(), value.to_string()));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }
}
