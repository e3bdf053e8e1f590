//! The word-count bolts.

use crate::bytemap::ByteMap;
use crate::component::{Bolt, BoltCollector, OutputDeclarer};
use crate::tuple::Tuple;
use crate::value::{Fields, SmolStr};
use crate::wire::ValueRef;

/// Splits field 0 on whitespace (Unicode's definition, as `str::split_whitespace`) and emits each
/// word (field `word`), anchored to the input.
#[derive(Debug)]
pub struct SplitSentenceBolt;

impl Bolt for SplitSentenceBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let Some(ValueRef::Str(s)) = input.get(0) else {
            if let Some(v) = input.get(0) {
                out.report_error(&format!(
                    "SplitSentenceBolt expects a string in field 0, got {v}"
                ));
            }
            return;
        };
        let mut emit = |w: &str| out.emit_refs_anchored(input, &[ValueRef::Str(w)]);
        if s.is_ascii() {
            s.split_ascii_whitespace().for_each(&mut emit);
        } else {
            s.split_whitespace().for_each(&mut emit);
        }
    }
}

/// Counts field 0 and emits `word, count` with the running count, as Storm's `TestWordCounter`.
///
/// Words are looked up by their bytes as the tuple holds them; the word emitted is the map's own
/// copy, checked as UTF-8 once when it was first seen.
#[derive(Debug, Default)]
pub struct WordCountBolt {
    counts: ByteMap<SmolStr, i64>,
}

impl Bolt for WordCountBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word", "count"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let text;
        let key = match input.get_str_bytes(0) {
            Some(b) => b,
            // Not a string: counted by its text, as Storm's counter would print it.
            None => match input.get(0) {
                Some(v) => {
                    text = v.to_string();
                    text.as_bytes()
                }
                None => return,
            },
        };
        let (word, n) = match self.counts.get_mut(key) {
            Some((w, n)) => {
                *n += 1;
                (w, *n)
            }
            None => self.first_seen(key),
        };
        out.emit_refs_anchored(input, &[ValueRef::Str(word), ValueRef::Int(n)]);
    }
}

impl WordCountBolt {
    /// A word's first count: kept out of line, so the per-tuple path stays small.
    #[cold]
    #[inline(never)]
    fn first_seen(&mut self, key: &[u8]) -> (&SmolStr, i64) {
        let (w, n) = self
            .counts
            .insert(SmolStr::new(String::from_utf8_lossy(key)), 1);
        (w, *n)
    }
}
