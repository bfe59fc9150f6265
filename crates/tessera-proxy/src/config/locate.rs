//! Maps a path inside the YAML document (`routes[2].handler.proxy.cluster`) back to the line and
//! column where it was written.
//!
//! serde reports syntax and type errors with a location, but the semantic checks (a route naming a
//! cluster that does not exist, a template naming an unknown capture) run on the deserialised
//! structs, which carry no positions. Rather than thread spans through every struct, we parse the
//! text a second time with an event parser that records a marker per node, and look paths up in
//! that tree. A path that does not exist resolves to its deepest existing ancestor.

use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A path into the document, e.g. `routes[2].handler.proxy.cluster`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigPath(pub Vec<PathSeg>);

impl ConfigPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(key.into()));
        p
    }
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(index));
        p
    }
    pub fn join(&self, other: &ConfigPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

enum NodeKind {
    Scalar,
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

struct Node {
    pos: Position,
    kind: NodeKind,
}

/// The positions of every node of one YAML document.
pub struct Locator {
    root: Option<Node>,
}

struct Frame {
    node: Node,
    /// This collection is itself a mapping key (a "complex key"), which paths cannot address.
    is_key: bool,
    /// In a mapping: the key whose value comes next, if one has been read.
    key: Option<String>,
    /// Whether a key has been read yet; a block mapping's start event is marked late, at its
    /// first `:`, so the mapping's position is taken from its first key instead.
    seen_key: bool,
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Frame>,
    root: Option<Node>,
}

fn pos(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl TreeBuilder {
    /// Whether the next node read is a mapping key.
    fn expecting_key(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|f| matches!(f.node.kind, NodeKind::Map(_)) && f.key.is_none())
    }

    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(frame) => match &mut frame.node.kind {
                NodeKind::Seq(items) => items.push(node),
                NodeKind::Map(entries) => {
                    entries.push((frame.key.take().unwrap_or_default(), node))
                }
                NodeKind::Scalar => {}
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) if self.expecting_key() => {
                if let Some(frame) = self.stack.last_mut() {
                    if !frame.seen_key {
                        frame.seen_key = true;
                        frame.node.pos = pos(mark);
                    }
                    frame.key = Some(value);
                }
            }
            Event::Scalar(..) | Event::Alias(_) => self.push_value(Node {
                pos: pos(mark),
                kind: NodeKind::Scalar,
            }),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let kind = if matches!(ev, Event::SequenceStart(..)) {
                    NodeKind::Seq(Vec::new())
                } else {
                    NodeKind::Map(Vec::new())
                };
                let is_key = self.expecting_key();
                self.stack.push(Frame {
                    node: Node {
                        pos: pos(mark),
                        kind,
                    },
                    is_key,
                    key: None,
                    seen_key: false,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    if frame.is_key {
                        if let Some(parent) = self.stack.last_mut() {
                            parent.key = Some(String::new());
                        }
                    } else {
                        self.push_value(frame.node);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Parse `text`. A document that does not parse yields a locator that knows no positions;
    /// the syntax error itself is reported by serde with its own location.
    pub fn new(text: &str) -> Self {
        let mut builder = TreeBuilder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self { root: None };
        }
        Self { root: builder.root }
    }

    /// The position of the node at `path`, or of its deepest existing ancestor.
    pub fn position(&self, path: &ConfigPath) -> Position {
        let fallback = Position { line: 1, column: 1 };
        let Some(mut node) = self.root.as_ref() else {
            return fallback;
        };
        for seg in &path.0 {
            let next = match (&node.kind, seg) {
                (NodeKind::Map(entries), PathSeg::Key(k)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, n)| n)
                }
                (NodeKind::Seq(items), PathSeg::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "listen:\n  - address: \"0.0.0.0:8080\"\nroutes:\n  - name: a\n    handler:\n      proxy: { cluster: missing }\n  - name: b\n";

    #[test]
    fn finds_nested_values() {
        let loc = Locator::new(DOC);
        let p = ConfigPath::root()
            .key("routes")
            .index(0)
            .key("handler")
            .key("proxy")
            .key("cluster");
        assert_eq!(
            loc.position(&p),
            Position {
                line: 6,
                column: 25
            }
        );
        let p = ConfigPath::root().key("routes").index(1).key("name");
        assert_eq!(
            loc.position(&p),
            Position {
                line: 7,
                column: 11
            }
        );
    }

    #[test]
    fn missing_path_falls_back_to_ancestor() {
        let loc = Locator::new(DOC);
        let p = ConfigPath::root().key("routes").index(1).key("handler");
        assert_eq!(loc.position(&p), Position { line: 7, column: 5 });
    }

    #[test]
    fn displays_paths() {
        let p = ConfigPath::root()
            .key("routes")
            .index(3)
            .key("filters")
            .index(0);
        assert_eq!(p.to_string(), "routes[3].filters[0]");
    }
}
