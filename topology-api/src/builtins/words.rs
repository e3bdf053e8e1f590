//! The word-count bolts.

use crate::component::{Bolt, BoltCollector, OutputDeclarer};
use crate::tuple::Tuple;
use crate::value::{Fields, SmolStr, small_str};
use crate::wire::ValueRef;
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
#[derive(Debug, Default)]
pub struct WordCountBolt {
    counts: FxHashMap<SmolStr, i64>,
}

impl Bolt for WordCountBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word", "count"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let other;
        let word = match input.get_str(0) {
            Some(s) => s,
            None => match input.get(0) {
                Some(v) => {
                    other = v.to_string();
                    &other
                }
                None => return,
            },
        };
        let n = match self.counts.get_mut(word) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.insert(small_str(word), 1);
                1
            }
        };
        out.emit_refs_anchored(input, &[ValueRef::Str(word), ValueRef::Int(n)]);
    }
}
