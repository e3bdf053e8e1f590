//! The word-count bolts.

use topology_api::bytemap::ByteMap;
use topology_api::component::{Bolt, BoltCollector, OutputDeclarer};
use topology_api::tuple::Tuple;
use topology_api::value::{Fields, SmolStr};
use topology_api::wire::ValueRef;
use topology_api::{KeyValueState, StatefulBolt};

/// Splits field 0 on whitespace (Unicode's definition, as `str::split_whitespace`) and emits each
/// word (field `word`), anchored to the input.
#[derive(Debug)]
pub struct SplitSentenceBolt;

impl Bolt for SplitSentenceBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    // Inlined into `execute_batch`: no call per tuple.
    #[inline(always)]
    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let Some(s) = input.get_str(0) else {
            if let Some(v) = input.get(0) {
                out.report_error(&format!(
                    "SplitSentenceBolt expects a string in field 0, got {v}"
                ));
            }
            return;
        };
        let mut emit = |w: &str| out.emit_refs_anchored(input, &[ValueRef::Str(w)]);
        if s.is_ascii() {
            for_each_ascii_word(s, &mut emit);
        } else {
            s.split_whitespace().for_each(&mut emit);
        }
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `v` that is zero, 0 in the others (exact, no carries between bytes).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    !(((v & !HI) + !HI) | v | !HI)
}

/// 0x80 in each byte of `x` below 0x21 (space and the control characters), 0 in the others.
#[inline(always)]
fn below_0x21(x: u64) -> u64 {
    !(((x & !HI) + (0x80 - 0x21) * LO) | x) & HI
}

/// The words of an ASCII string, exactly as `str::split_ascii_whitespace` gives them, found eight
/// bytes at a time: a word-count split spends most of its time finding spaces.
#[inline]
pub(crate) fn for_each_ascii_word(s: &str, mut f: impl FnMut(&str)) {
    let b = s.as_bytes();
    let n = b.len();
    // Just past the last whitespace byte seen: where the next word starts.
    let mut from = 0;
    let mut boundary = |at: usize, from: &mut usize| {
        if at > *from
            && let Some(w) = s.get(*from..at)
        {
            f(w);
        }
        *from = at + 1;
    };
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let low = below_0x21(x);
        if low != 0 {
            let spaces = zero_bytes(x ^ (0x20 * LO));
            let mut ws = if low == spaces {
                spaces
            } else {
                // A tab, line break or control character: checked one byte at a time.
                chunk.iter().enumerate().fold(0u64, |m, (k, c)| {
                    if c.is_ascii_whitespace() {
                        m | (0x80 << (8 * k))
                    } else {
                        m
                    }
                })
            };
            while ws != 0 {
                boundary(i + (ws.trailing_zeros() / 8) as usize, &mut from);
                ws &= ws - 1;
            }
        }
        i += 8;
    }
    for (k, c) in b.iter().enumerate().skip(i) {
        if c.is_ascii_whitespace() {
            boundary(k, &mut from);
        }
    }
    if n > from
        && let Some(w) = s.get(from..)
    {
        f(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every ASCII string, control characters and runs of whitespace included, splits as
        /// the standard library splits it.
        #[test]
        fn ascii_words_are_split_ascii_whitespace(
            bytes in proptest::collection::vec(
                prop_oneof![0u8..0x80, Just(b' '), Just(b'\t'), Just(b'a'), Just(0x0b)],
                0..80,
            )
        ) {
            let s = String::from_utf8(bytes).unwrap();
            let mut ours = Vec::new();
            for_each_ascii_word(&s, |w| ours.push(w.to_owned()));
            let std: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
            prop_assert_eq!(ours, std);
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

    // Inlined into `execute_batch`: no call per tuple.
    #[inline(always)]
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
        // Looked up from the 16 bytes of the batch where the word starts (a short word is
        // hashed and compared without a branch on its length).
        let window = input.window(key);
        let (word, n) = match self.counts.get_mut_in(key, window) {
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

/// A word count whose counts are checkpointed state (`StatefulWordCount`; Storm's Flux example
/// `org.apache.storm.flux.examples.StatefulWordCounter` resolves to it): counts words of field 0
/// in a [`KeyValueState`] of word -> count, and emits `(word, count)` anchored to each input.
#[derive(Debug, Default)]
pub struct StatefulWordCount;

impl StatefulBolt for StatefulWordCount {
    // Words are short: kept inline, a hit compares them without following a pointer.
    type Key = SmolStr;
    type Value = i64;

    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word", "count"]));
    }

    fn execute(
        &mut self,
        input: &Tuple,
        state: &mut KeyValueState<SmolStr, i64>,
        out: &mut BoltCollector<'_>,
    ) {
        let text;
        // Looked up by the bytes the tuple holds (a string field is valid UTF-8).
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
        if let Some((word, &n)) = state.update_text(key, |n| n.copied().unwrap_or(0) + 1) {
            out.emit_refs_anchored(input, &[ValueRef::Str(word), ValueRef::Int(n)]);
        }
    }
}
