//! A YAML document as a tree of located nodes, parsed by serde-saphyr.
//!
//! Validation walks this tree instead of deserializing straight into structs, so that it can report
//! every problem at once (a serde struct stops at the first unknown key or wrong type) and point each
//! one at its line and column.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A 1-based position in the YAML text, and which file it is in: 0 is the file given, others are
/// files it `includes` (their names are kept beside the tree, see `spec::load_bytes_in`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub file: u16,
    pub line: usize,
    pub col: usize,
}

/// A node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: NodeValue,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl NodeValue {
    /// A short description for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            NodeValue::Null => "nothing (null)".into(),
            NodeValue::Bool(b) => format!("boolean {b}"),
            NodeValue::Int(i) => format!("integer {i}"),
            NodeValue::Float(f) => format!("number {f}"),
            NodeValue::Str(s) => {
                let s: String = s.chars().take(40).collect();
                format!("string \"{s}\"")
            }
            NodeValue::Seq(_) => "a list".into(),
            NodeValue::Map(_) => "a mapping".into(),
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Converts to JSON (for config values and component arguments).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            NodeValue::Null => serde_json::Value::Null,
            NodeValue::Bool(b) => (*b).into(),
            NodeValue::Int(i) => (*i).into(),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            NodeValue::Str(s) => s.clone().into(),
            NodeValue::Seq(v) => v.iter().map(Node::to_json).collect(),
            NodeValue::Map(m) => m
                .iter()
                .map(|(k, v)| (key_text(k), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// The text of a mapping key, whatever its YAML type.
pub fn key_text(k: &Node) -> String {
    match &k.value {
        NodeValue::Str(s) => s.clone(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) => f.to_string(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Null => "null".into(),
        other => other.describe(),
    }
}

/// What serde-saphyr builds; converted to [`Node`] right after parsing.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(i64::try_from(v)
                    .map(Raw::Int)
                    .unwrap_or(Raw::Float(v as f64)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn convert(s: Spanned<Raw>, file: u16) -> Node {
    let pos = Pos {
        file,
        line: s.referenced.line() as usize,
        col: s.referenced.column() as usize,
    };
    let value = match s.value {
        Raw::Null => NodeValue::Null,
        Raw::Bool(b) => NodeValue::Bool(b),
        Raw::Int(i) => NodeValue::Int(i),
        Raw::Float(f) => NodeValue::Float(f),
        Raw::Str(s) => NodeValue::Str(s),
        Raw::Seq(v) => NodeValue::Seq(v.into_iter().map(|x| convert(x, file)).collect()),
        Raw::Map(m) => NodeValue::Map(
            m.into_iter()
                .map(|(k, v)| (convert(k, file), convert(v, file)))
                .collect(),
        ),
    };
    Node { pos, value }
}

/// A YAML syntax error with its position when the parser knows it.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses YAML text into a located tree. Alias bombs, excessive nesting and oversized documents are
/// refused by serde-saphyr's budget before they can use much memory.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_in(text, 0)
}

/// [`parse`], with positions marked as being in file number `file`.
pub fn parse_in(text: &str, file: u16) -> Result<Node, SyntaxError> {
    match serde_saphyr::from_str::<Spanned<Raw>>(text) {
        Ok(n) => Ok(convert(n, file)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    file,
                    line: l.line() as usize,
                    col: l.column() as usize,
                })
                .unwrap_or(Pos {
                    file,
                    line: 1,
                    col: 1,
                });
            let full = e.without_snippet().to_string();
            // serde-saphyr says "error: line L column C: message"; the position is printed by us.
            let message = strip_location_prefix(&full);
            Err(SyntaxError { pos, message })
        }
    }
}

fn strip_location_prefix(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s);
    let mut t = first.strip_prefix("error: ").unwrap_or(first);
    // Some messages repeat the position at the end: "... at line 3, column 2".
    if let Some(i) = t.rfind(" at line ")
        && t[i..].contains(", column ")
    {
        t = &t[..i];
    }
    if let Some(rest) = t.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].to_owned();
    }
    t.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_recorded() {
        let n = parse("name: x\nbolts:\n  - id: a\n    parallelism: 2\n").expect("valid");
        let bolts = n.get("bolts").expect("bolts");
        let NodeValue::Seq(items) = &bolts.value else {
            panic!()
        };
        let p = items[0].get("parallelism").expect("p");
        assert_eq!(p.value, NodeValue::Int(2));
        assert_eq!(
            p.pos,
            Pos {
                file: 0,
                line: 4,
                col: 18
            }
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").expect_err("invalid");
        assert_eq!(e.pos.line, 2);
        assert!(!e.message.starts_with("error"), "{}", e.message);
    }
}
