//! Tuples: the unit of data that moves between tasks.
//!
//! A tuple carries its values, the task that emitted it, and a reference to an interned
//! [`StreamSource`] (component, stream and field names). The source is interned once per
//! (component, stream, fields) for the life of the process, so a tuple names its origin with one
//! pointer: no reference count is touched per tuple, which keeps cores from fighting over a shared
//! cache line on the hot path.

use crate::value::{Fields, Value, Values};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The name of the stream used when none is given, as in Storm.
pub const DEFAULT_STREAM: &str = "default";

/// Where a tuple came from: component, stream and the stream's declared fields.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StreamSource {
    pub component: String,
    pub stream: String,
    pub fields: Fields,
}

impl StreamSource {
    /// Returns the process-wide interned copy of this source.
    ///
    /// Interned sources are never freed; there is one per distinct (component, stream, fields), so
    /// memory is bounded by the topologies' shapes, not by how many times they run.
    pub fn intern(component: &str, stream: &str, fields: &Fields) -> &'static StreamSource {
        static TABLE: OnceLock<Mutex<HashSet<&'static StreamSource>>> = OnceLock::new();
        let probe = StreamSource {
            component: component.to_owned(),
            stream: stream.to_owned(),
            fields: fields.clone(),
        };
        let mut table = TABLE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(s) = table.get(&probe) {
            return s;
        }
        let leaked: &'static StreamSource = Box::leak(Box::new(probe));
        table.insert(leaked);
        leaked
    }
}

/// Component id of system tuples (ticks, acker messages).
pub const SYSTEM_COMPONENT: &str = "__system";
/// Streams of the acking protocol (Storm's names).
pub const ACK_INIT_STREAM: &str = "__ack_init";
pub const ACK_ACK_STREAM: &str = "__ack_ack";
pub const ACK_FAIL_STREAM: &str = "__ack_fail";

/// The interned source of a system stream, for tuples that arrive from another worker. `None` for
/// streams that are not system streams.
pub fn system_source(component: &str, stream: &str) -> Option<&'static StreamSource> {
    let fields = match stream {
        ACK_INIT_STREAM | ACK_ACK_STREAM => Fields::new(["id", "val"]),
        ACK_FAIL_STREAM => Fields::new(["id"]),
        "__tick" => Fields::new(["tick"]),
        _ => return None,
    };
    Some(StreamSource::intern(component, stream, &fields))
}

/// Acking identity of a tuple: for each spout tuple (root id) it belongs to, the random id of the
/// edge this tuple is. Empty when acking is off or the tuple is unanchored.
pub type AckIds = SmallVec<[(u64, u64); 1]>;

/// A message id a spout attaches to a tuple it wants acked or failed, as Storm's `msgId`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageId {
    Int(u64),
    Str(String),
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageId::Int(i) => write!(f, "{i}"),
            MessageId::Str(s) => f.write_str(s),
        }
    }
}

/// Microseconds since the Unix epoch: the clock tuples are stamped with, comparable across the
/// processes of one machine (and of machines whose clocks are synchronised).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One tuple as a bolt receives it.
#[derive(Clone, Debug)]
pub struct Tuple {
    values: Values,
    source: &'static StreamSource,
    source_task: u32,
    ack_ids: AckIds,
    /// When the spout tuple this one descends from was emitted ([`now_us`]); 0 if unknown.
    born_us: u64,
}

impl Tuple {
    /// Builds a tuple; the runtime does this, and tests of single components may too.
    pub fn new(source: &'static StreamSource, source_task: u32, values: Values) -> Self {
        Tuple {
            values,
            source,
            source_task,
            ack_ids: AckIds::new(),
            born_us: 0,
        }
    }

    /// Builds a tuple with every field at once (the runtime's hot path: one write of the whole
    /// struct instead of a chain of builder moves, which the CPU cannot forward cheaply).
    #[inline]
    pub fn from_parts(
        source: &'static StreamSource,
        source_task: u32,
        values: Values,
        ack_ids: AckIds,
        born_us: u64,
    ) -> Self {
        Tuple {
            values,
            source,
            source_task,
            ack_ids,
            born_us,
        }
    }

    /// Stamps the time its spout tuple was emitted (the runtime does this).
    #[inline]
    pub fn with_born(mut self, born_us: u64) -> Self {
        self.born_us = born_us;
        self
    }

    /// When the spout tuple behind this one was emitted, in microseconds since the Unix epoch
    /// (0 if unknown). End-to-end latency is measured from it.
    pub fn born_us(&self) -> u64 {
        self.born_us
    }

    pub fn with_ack_ids(mut self, ids: AckIds) -> Self {
        self.ack_ids = ids;
        self
    }

    pub fn set_ack_ids(&mut self, ids: AckIds) {
        self.ack_ids = ids;
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn into_values(self) -> Values {
        self.values
    }

    /// Value at a position, as Storm's `getValue(i)`.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// Value of a named field, as Storm's `getValueByField`.
    pub fn get_by_field(&self, name: &str) -> Option<&Value> {
        self.source
            .fields
            .index_of(name)
            .and_then(|i| self.values.get(i))
    }

    /// String at a position, if that value is a string.
    pub fn get_str(&self, i: usize) -> Option<&str> {
        self.values.get(i).and_then(Value::as_str)
    }

    pub fn fields(&self) -> &Fields {
        &self.source.fields
    }

    pub fn source_component(&self) -> &str {
        &self.source.component
    }

    pub fn source_stream(&self) -> &str {
        &self.source.stream
    }

    pub fn source(&self) -> &'static StreamSource {
        self.source
    }

    pub fn source_task(&self) -> u32 {
        self.source_task
    }

    pub fn ack_ids(&self) -> &AckIds {
        &self.ack_ids
    }

    /// True for Storm's tick tuples (component `__system`, stream `__tick`).
    pub fn is_tick(&self) -> bool {
        self.source.component == "__system" && self.source.stream == "__tick"
    }
}

impl PartialEq for Tuple {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.source, other.source)
            && self.source_task == other.source_task
            && self.values == other.values
            && self.ack_ids == other.ack_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[test]
    fn interning_returns_the_same_source() {
        let f = Fields::new(["word"]);
        let a = StreamSource::intern("split", "default", &f);
        let b = StreamSource::intern("split", "default", &f);
        assert!(std::ptr::eq(a, b));
        let c = StreamSource::intern("split", "other", &f);
        assert!(!std::ptr::eq(a, c));
    }

    #[test]
    fn field_access_by_name() {
        let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
        let t = Tuple::new(src, 3, values!["storm", 2]);
        assert_eq!(t.get_by_field("count"), Some(&Value::Int(2)));
        assert_eq!(t.get_by_field("nope"), None);
        assert_eq!(t.source_component(), "count");
        assert_eq!(t.source_task(), 3);
    }
}
