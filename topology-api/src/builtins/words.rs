//! The word-count bolts.

use crate::component::{Bolt, BoltCollector, OutputDeclarer};
use crate::tuple::Tuple;
use crate::value::{Fields, SmolStr, Value, Values, small_str};
use rustc_hash::FxHashMap;

/// Splits field 0 on whitespace (Unicode's definition, as `str::split_whitespace`) and emits each
/// word (field `word`), anchored to the input.
#[derive(Debug)]
pub struct SplitSentenceBolt;

impl Bolt for SplitSentenceBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let Some(Value::Str(s)) = input.get(0) else {
            if let Some(v) = input.get(0) {
                out.report_error(&format!(
                    "SplitSentenceBolt expects a string in field 0, got {v}"
                ));
            }
            return;
        };
        let mut emit = |w: &str| {
            let mut v = Values::new();
            v.push(Value::Str(small_str(w)));
            out.emit_anchored(input, v);
        };
        if s.is_ascii() {
            s.split_ascii_whitespace().for_each(&mut emit);
        } else {
            s.split_whitespace().for_each(&mut emit);
        }
    }
}

/// Counts field 0 and emits `word, count` with the running count, as Storm's `TestWordCounter`.
#[derive(Debug, Default)]
pub struct WordCountBolt {
    counts: FxHashMap<SmolStr, i64>,
}

impl Bolt for WordCountBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word", "count"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let key = match input.get(0) {
            Some(Value::Str(s)) => s.clone(),
            Some(other) => SmolStr::new(other.to_string()),
            None => return,
        };
        // Looked up by the `SmolStr` itself: its equality compares the inline bytes in place,
        // where `str` equality calls `memcmp`.
        let n = match self.counts.get_mut(&key) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.insert(key.clone(), 1);
                1
            }
        };
        let mut v = Values::new();
        v.push(Value::Str(key));
        v.push(Value::Int(n));
        out.emit_anchored(input, v);
    }
}
