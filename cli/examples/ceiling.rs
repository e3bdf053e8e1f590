//! How fast word count can go with Gale's tuple types but none of its engine: the ceiling the
//! runtime works under (docs/performance.md, "The ceiling of Gale's tuple types").
//!
//!   cargo run --release -p gale-cli --example ceiling -- MODE TEXT_FILE
//!
//! MODE:
//! - `plain`: one thread, words as `&str` counted in a hash map (what limit-1t does).
//! - `values`: one thread, Storm's word count with Gale's types and no queues: each word becomes a
//!   `Tuple` of one `Value::Str`, is hashed as FIELDS routing hashes it, counted in a
//!   `SmolStr`-keyed map, becomes a `word, count` tuple and updates a second map (the sink).
//! - `pipeline`: the bundled topology's shape with no engine: a split thread, 2 count threads
//!   (FIELDS by the stable hash), a sink thread; batches of 500 `Delivery`-shaped tuples (task +
//!   `Tuple`, 112 bytes) over bounded crossbeam channels.
//! - `pipeline-slim`: the same with 64-byte queued tuples (task + values only).
//! - `pipeline-lean`: the same shape with no dynamic values at all: a word of up to 16 bytes packed
//!   into a `u128` (longer words are skipped and not counted), queued as 32-byte `Copy` structs,
//!   hashed and counted by the packed key. Not a design: a measure of what the dynamic
//!   representation costs.
//! - `pipeline-arena`: the same shape with general values but no per-tuple objects: each batch is
//!   one byte buffer, each tuple appended to it as a header (receiving task, birth stamp) and its
//!   values (a length-prefixed word; a word and an 8-byte count), and read back in place as
//!   `&str` views by the receiver. What tuples as views into their batch (the frame format a
//!   redesign would share with the TCP transport) would allow; words of any length are kept.
//!
//! It prints words/s and ns per word (wall); run it under `/usr/bin/time` for CPU seconds.

use crossbeam_channel::{Receiver, Sender, bounded};
use rustc_hash::FxHashMap;
use std::time::Instant;
use topology_api::value::{SmolStr, StableHasher, small_str};
use topology_api::{AckIds, Fields, StreamSource, Value, Values};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 500;

fn stable_hash(v: &Value) -> u64 {
    let mut h = StableHasher::new();
    v.stable_hash(&mut h);
    h.finish()
}

/// What the pipeline queues and keeps: how a word becomes a queued tuple (and which of the 2
/// count threads it goes to), how a count thread counts it, how the sink keeps the result.
trait Scheme {
    type Word: Send + 'static;
    type Count: Send + 'static;
    type Counts: Default;
    type Latest: Default + Send;
    /// The queued word and the count thread (0 or 1) it goes to; `None` skips the word.
    fn word(w: &str) -> Option<(usize, Self::Word)>;
    fn count(counts: &mut Self::Counts, w: Self::Word) -> Option<Self::Count>;
    fn keep(latest: &mut Self::Latest, c: Self::Count);
    fn distinct(latest: &Self::Latest) -> usize;
}

/// Gale's tuple object before tuples became views into their batch: values, source, source
/// task, ack ids and birth stamp (104 bytes).
struct ObjectTuple {
    values: Values,
    _source: &'static StreamSource,
    _source_task: u32,
    _ack_ids: AckIds,
    _born_us: u64,
}

impl ObjectTuple {
    fn new(source: &'static StreamSource, source_task: u32, values: Values) -> Self {
        ObjectTuple {
            values,
            _source: source,
            _source_task: source_task,
            _ack_ids: AckIds::new(),
            _born_us: 1,
        }
    }
}

/// The runtime's former shape: the receiving task and a whole tuple object (112 bytes).
struct Whole {
    _task: u32,
    tuple: ObjectTuple,
}

/// Only the receiving task and the values (64 bytes).
struct Slim {
    _task: u32,
    values: Values,
}

/// The split and count streams, interned once.
fn sources() -> (&'static StreamSource, &'static StreamSource) {
    static SOURCES: std::sync::OnceLock<(&'static StreamSource, &'static StreamSource)> =
        std::sync::OnceLock::new();
    *SOURCES.get_or_init(|| {
        (
            StreamSource::intern("split", "default", &Fields::new(["word"])),
            StreamSource::intern("count", "default", &Fields::new(["word", "count"])),
        )
    })
}

/// Dynamic values queued as `Q`: built from a word or a (word, count), read back as values.
trait Queued: Send + 'static {
    fn word(task: u32, values: Values) -> Self;
    fn count(values: Values) -> Self;
    fn values(&self) -> &[Value];
}

impl Queued for Whole {
    fn word(task: u32, values: Values) -> Self {
        Whole {
            _task: task,
            tuple: ObjectTuple::new(sources().0, 5, values),
        }
    }
    fn count(values: Values) -> Self {
        Whole {
            _task: 4,
            tuple: ObjectTuple::new(sources().1, 1, values),
        }
    }
    fn values(&self) -> &[Value] {
        &self.tuple.values
    }
}

impl Queued for Slim {
    fn word(task: u32, values: Values) -> Self {
        Slim {
            _task: task,
            values,
        }
    }
    fn count(values: Values) -> Self {
        Slim { _task: 4, values }
    }
    fn values(&self) -> &[Value] {
        &self.values
    }
}

/// Gale's dynamic values, queued as `Q`.
struct Dynamic<Q>(std::marker::PhantomData<Q>);

impl<Q: Queued> Scheme for Dynamic<Q> {
    type Word = Q;
    type Count = Q;
    type Counts = FxHashMap<SmolStr, i64>;
    type Latest = FxHashMap<SmolStr, Value>;

    fn word(w: &str) -> Option<(usize, Q)> {
        let v = word_values(w);
        let d = topology_api::grouping::reduce(stable_hash(&v[0]), 2);
        Some((d, Q::word(d as u32 + 1, v)))
    }

    fn count(counts: &mut Self::Counts, q: Q) -> Option<Q> {
        let Some(Value::Str(k)) = q.values().first() else {
            return None;
        };
        let n = bump(counts, k);
        Some(Q::count(count_values(k.clone(), n)))
    }

    fn keep(latest: &mut Self::Latest, q: Q) {
        if let [Value::Str(k), v] = q.values() {
            keep_latest(latest, k, v);
        }
    }

    fn distinct(latest: &Self::Latest) -> usize {
        latest.len()
    }
}

/// No dynamic values: a word of up to 16 bytes packed into a `u128` (longer ones skipped).
struct Lean;

#[derive(Clone, Copy)]
struct LeanWord {
    _task: u32,
    len: u8,
    word: u128,
}

#[derive(Clone, Copy)]
struct LeanCount {
    word: u128,
    len: u8,
    n: i64,
}

impl Scheme for Lean {
    type Word = LeanWord;
    type Count = LeanCount;
    type Counts = FxHashMap<(u128, u8), i64>;
    type Latest = FxHashMap<(u128, u8), i64>;

    fn word(w: &str) -> Option<(usize, LeanWord)> {
        if w.len() > 16 {
            return None;
        }
        let (word, len) = (pack(w.as_bytes()), w.len() as u8);
        let d = topology_api::grouping::reduce(mix(word, len), 2);
        Some((
            d,
            LeanWord {
                _task: d as u32 + 1,
                len,
                word,
            },
        ))
    }

    fn count(counts: &mut Self::Counts, w: LeanWord) -> Option<LeanCount> {
        let n = counts.entry((w.word, w.len)).or_insert(0);
        *n += 1;
        Some(LeanCount {
            word: w.word,
            len: w.len,
            n: *n,
        })
    }

    fn keep(latest: &mut Self::Latest, c: LeanCount) {
        latest.insert((c.word, c.len), c.n);
    }

    fn distinct(latest: &Self::Latest) -> usize {
        latest.len()
    }
}

/// Counts `key` in `counts` and returns the new count.
fn bump(counts: &mut FxHashMap<SmolStr, i64>, key: &SmolStr) -> i64 {
    match counts.get_mut(key.as_str()) {
        Some(n) => {
            *n += 1;
            *n
        }
        None => {
            counts.insert(key.clone(), 1);
            1
        }
    }
}

fn keep_latest(latest: &mut FxHashMap<SmolStr, Value>, key: &SmolStr, value: &Value) {
    match latest.get_mut(key.as_str()) {
        Some(slot) => *slot = value.clone(),
        None => {
            latest.insert(key.clone(), value.clone());
        }
    }
}

fn word_values(w: &str) -> Values {
    let mut v = Values::new();
    v.push(Value::Str(small_str(w)));
    v
}

fn count_values(key: SmolStr, n: i64) -> Values {
    let mut v = Values::new();
    v.push(Value::Str(key));
    v.push(Value::Int(n));
    v
}

fn plain(lines: &[&str]) -> usize {
    let mut counts: FxHashMap<&str, i64> = FxHashMap::default();
    for l in lines {
        for w in l.split_ascii_whitespace() {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts.len()
}

fn values(lines: &[&str]) -> usize {
    let (split, count) = sources();
    let mut counts = FxHashMap::default();
    let mut latest = FxHashMap::default();
    let mut tasks = [0u64; 2];
    for l in lines {
        for w in l.split_ascii_whitespace() {
            let t = ObjectTuple::new(split, 5, word_values(w));
            let Some(Value::Str(k)) = t.values.first() else {
                continue;
            };
            tasks[topology_api::grouping::reduce(stable_hash(&t.values[0]), 2)] += 1;
            let n = bump(&mut counts, k);
            let out = ObjectTuple::new(count, 1, count_values(k.clone(), n));
            if let [Value::Str(k), v] = &out.values[..] {
                keep_latest(&mut latest, k, v);
            }
        }
    }
    // The routing decision is kept alive, as the runtime's is.
    std::hint::black_box(tasks);
    latest.len()
}

fn send<Q>(tx: &Sender<Vec<Q>>, buf: &mut Vec<Q>) {
    let full = std::mem::replace(buf, Vec::with_capacity(BATCH));
    // The receiver only goes away when this run is over.
    let _ = tx.send(full);
}

fn pipeline<S: Scheme>(lines: &[&str]) -> usize {
    let (to_count_0, from_split_0) = bounded::<Vec<S::Word>>(32);
    let (to_count_1, from_split_1) = bounded::<Vec<S::Word>>(32);
    let (to_sink, from_counts) = bounded::<Vec<S::Count>>(32);
    std::thread::scope(|s| {
        s.spawn(move || {
            let txs = [to_count_0, to_count_1];
            let mut outs = [Vec::with_capacity(BATCH), Vec::with_capacity(BATCH)];
            for l in lines {
                for (d, w) in l.split_ascii_whitespace().filter_map(S::word) {
                    outs[d].push(w);
                    if outs[d].len() >= BATCH {
                        send(&txs[d], &mut outs[d]);
                    }
                }
            }
            for (tx, out) in txs.iter().zip(&mut outs) {
                send(tx, out);
            }
        });
        let count = |rx: Receiver<Vec<S::Word>>, tx: Sender<Vec<S::Count>>| {
            move || {
                let mut counts = S::Counts::default();
                let mut out = Vec::with_capacity(BATCH);
                for batch in rx {
                    for c in batch.into_iter().filter_map(|w| S::count(&mut counts, w)) {
                        out.push(c);
                        if out.len() >= BATCH {
                            send(&tx, &mut out);
                        }
                    }
                }
                send(&tx, &mut out);
            }
        };
        s.spawn(count(from_split_0, to_sink.clone()));
        s.spawn(count(from_split_1, to_sink));
        s.spawn(move || {
            let mut latest = S::Latest::default();
            for batch in from_counts {
                for c in batch {
                    S::keep(&mut latest, c);
                }
            }
            S::distinct(&latest)
        })
        .join()
        .unwrap_or(0)
    })
}

/// Bytes of tuples per arena batch: about 500 word tuples.
const ARENA_BYTES: usize = 500 * 20;

/// Appends one tuple to an arena batch: receiving task (4 bytes), birth stamp (8), the word's
/// length (2) and bytes, and an optional count (8).
fn arena_push(buf: &mut Vec<u8>, task: u32, born: u64, word: &str, count: Option<i64>) {
    buf.extend_from_slice(&task.to_le_bytes());
    buf.extend_from_slice(&born.to_le_bytes());
    buf.extend_from_slice(&(word.len() as u16).to_le_bytes());
    buf.extend_from_slice(word.as_bytes());
    if let Some(n) = count {
        buf.extend_from_slice(&n.to_le_bytes());
    }
}

/// Reads the tuples of an arena batch in place: (task, born, word, count).
fn arena_each(buf: &[u8], with_count: bool, mut f: impl FnMut(u32, u64, &str, i64)) {
    let mut b = buf;
    while b.len() >= 14 {
        let task = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let born = u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
        let n = usize::from(u16::from_le_bytes([b[12], b[13]]));
        let end = 14 + n + if with_count { 8 } else { 0 };
        if b.len() < end {
            return;
        }
        let count = if with_count {
            let c = &b[14 + n..end];
            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        } else {
            0
        };
        // The writer only appends whole `&str`s, so this check never fails; it is the cost a
        // safe reader pays for its views.
        if let Ok(w) = std::str::from_utf8(&b[14..14 + n]) {
            f(task, born, w, count);
        }
        b = &b[end..];
    }
}

fn pipeline_arena(lines: &[&str]) -> usize {
    let (to_count_0, from_split_0) = bounded::<Vec<u8>>(32);
    let (to_count_1, from_split_1) = bounded::<Vec<u8>>(32);
    let (to_sink, from_counts) = bounded::<Vec<u8>>(32);
    let fresh = || Vec::with_capacity(ARENA_BYTES + 64);
    std::thread::scope(|s| {
        s.spawn(move || {
            let txs = [to_count_0, to_count_1];
            let mut outs = [fresh(), fresh()];
            for l in lines {
                for w in l.split_ascii_whitespace() {
                    let mut h = StableHasher::new();
                    h.write_u64(5);
                    h.write_bytes(w.as_bytes());
                    let d = topology_api::grouping::reduce(h.finish(), 2);
                    arena_push(&mut outs[d], d as u32 + 1, 1, w, None);
                    if outs[d].len() >= ARENA_BYTES {
                        let _ = txs[d].send(std::mem::replace(&mut outs[d], fresh()));
                    }
                }
            }
            for (tx, out) in txs.iter().zip(&mut outs) {
                let _ = tx.send(std::mem::take(out));
            }
        });
        let count = |rx: Receiver<Vec<u8>>, tx: Sender<Vec<u8>>| {
            move || {
                let mut counts: FxHashMap<Box<str>, i64> = FxHashMap::default();
                let mut out = fresh();
                for batch in rx {
                    arena_each(&batch, false, |_, born, w, _| {
                        let n = match counts.get_mut(w) {
                            Some(n) => {
                                *n += 1;
                                *n
                            }
                            None => {
                                counts.insert(w.into(), 1);
                                1
                            }
                        };
                        arena_push(&mut out, 4, born, w, Some(n));
                        if out.len() >= ARENA_BYTES {
                            let _ = tx.send(std::mem::replace(&mut out, fresh()));
                        }
                    });
                }
                let _ = tx.send(out);
            }
        };
        s.spawn(count(from_split_0, to_sink.clone()));
        s.spawn(count(from_split_1, to_sink));
        s.spawn(move || {
            let mut latest: FxHashMap<Box<str>, i64> = FxHashMap::default();
            for batch in from_counts {
                arena_each(&batch, true, |_, _, w, n| match latest.get_mut(w) {
                    Some(slot) => *slot = n,
                    None => {
                        latest.insert(w.into(), n);
                    }
                });
            }
            latest.len()
        })
        .join()
        .unwrap_or(0)
    })
}

/// The bytes of a word of up to 16 bytes as a little-endian `u128`, zero-padded, read with
/// overlapping fixed-size loads.
fn pack(b: &[u8]) -> u128 {
    let n = b.len();
    let le8 = |s: &[u8]| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let le4 = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    if n >= 8 {
        u128::from(le8(b)) | (u128::from(le8(&b[n - 8..])) << ((n - 8) * 8))
    } else if n >= 4 {
        u128::from(le4(b)) | (u128::from(le4(&b[n - 4..])) << ((n - 4) * 8))
    } else if n > 0 {
        u128::from(b[0])
            | (u128::from(b[n / 2]) << (8 * (n / 2)))
            | (u128::from(b[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

fn mix(word: u128, len: u8) -> u64 {
    let x = (word as u64) ^ ((word >> 64) as u64).rotate_left(29) ^ u64::from(len);
    let x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(path)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: ceiling plain|values|pipeline|pipeline-slim|pipeline-lean|pipeline-arena TEXT_FILE"
        );
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let words: usize = lines
        .iter()
        .map(|l| l.split_ascii_whitespace().count())
        .sum();
    let start = Instant::now();
    let distinct = match mode.as_str() {
        "plain" => plain(&lines),
        "values" => values(&lines),
        "pipeline" => pipeline::<Dynamic<Whole>>(&lines),
        "pipeline-slim" => pipeline::<Dynamic<Slim>>(&lines),
        "pipeline-lean" => pipeline::<Lean>(&lines),
        "pipeline-arena" => pipeline_arena(&lines),
        other => {
            eprintln!(
                "unknown mode {other:?}: plain, values, pipeline, pipeline-slim, pipeline-lean or pipeline-arena"
            );
            std::process::exit(2);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ceiling: mode={mode} words={words} distinct={distinct} wall_s={secs:.3} words_per_s={:.0} ns_per_word={:.1}",
        words as f64 / secs,
        secs * 1e9 / words as f64
    );
}
