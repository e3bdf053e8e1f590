//! Windows, as Storm's windowed bolts have them: by count or by duration, sliding or tumbling,
//! in processing time or in event time with watermarks, a lag and late tuples.
//!
//! This module is the pure part: what a window is ([`WindowSpec`], [`TimeSpec`], read from Flux
//! `configMethods` or Storm's config keys by [`WindowConfig::from_args`]), the watermark of a
//! bolt task's inputs ([`Watermarks`]) and which tuples each window holds ([`TimeWindows`],
//! [`CountWindows`]). No clock and no I/O: the runtime's adapter
//! ([`crate::windowed::WindowedBoltAdapter`]) feeds them tuples, timestamps and the time.
//!
//! Event-time rules (docs/windows.md):
//! - A time window is `(end - length, end]`; ends are multiples of the slide in epoch
//!   milliseconds. Windows with no tuples are skipped.
//! - The watermark is, over every upstream task of every input stream, the smallest of the
//!   highest timestamps each has sent, minus the lag. It is known once each upstream task has
//!   sent a tuple, and only moves forward. It moves with each input tuple.
//! - A tuple is late when it is older than the watermark of the upstream task it came from (the
//!   highest timestamp that task sent before it, minus the lag): lateness depends only on each
//!   upstream task's own sequence, never on how fast tasks run relative to each other. A window
//!   fires once its end is older than the bolt's watermark (`end < W`), which is never above an
//!   upstream task's, so a tuple that is not late always finds its windows open. (Storm fires at
//!   `end <= W` and calls `ts < W` late, so a tuple at exactly `W` is lost there.)
//! - When the input ends, the watermark goes to the end and every open window fires.

use crate::component::{ComponentArgs, ComponentError};
use serde_json::Value as Json;
use std::collections::{BTreeMap, VecDeque};

/// Storm's config keys for windows (a windowed bolt's `with*` methods set them).
pub mod keys {
    pub const WINDOW_LENGTH_COUNT: &str = "topology.bolts.window.length.count";
    pub const WINDOW_LENGTH_DURATION_MS: &str = "topology.bolts.window.length.duration.ms";
    pub const SLIDING_INTERVAL_COUNT: &str = "topology.bolts.window.sliding.interval.count";
    pub const SLIDING_INTERVAL_DURATION_MS: &str =
        "topology.bolts.window.sliding.interval.duration.ms";
    pub const LATE_TUPLE_STREAM: &str = "topology.bolts.late.tuple.stream";
    pub const TIMESTAMP_MAX_LAG_MS: &str = "topology.bolts.tuple.timestamp.max.lag.ms";
    pub const WATERMARK_EVENT_INTERVAL_MS: &str = "topology.bolts.watermark.event.interval.ms";
    /// Gale's: the field holding a tuple's event time (Storm sets it with `withTimestampField`).
    pub const TIMESTAMP_FIELD: &str = "topology.bolts.tuple.timestamp.field.name";
    /// Gale's (as Flink's allowed lateness): how far behind the watermark a tuple may be and
    /// still update its windows, which fire again.
    pub const ALLOWED_LATENESS_MS: &str = "topology.bolts.window.allowed.lateness.ms";
}

/// The field of a tuple on the late stream (Storm's `late_tuple`).
pub const LATE_TUPLE_FIELD: &str = "late_tuple";

/// A window's length or slide: tuples, or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Count(u64),
    Duration(u64),
}

/// A window: its length and how far it slides (tumbling: slide = length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub length: Size,
    pub slide: Size,
}

/// Event time: where a tuple's timestamp is, the lag, and what happens to late tuples.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeSpec {
    /// The field holding the timestamp (epoch ms, an integer); `None`: processing time.
    pub timestamp_field: Option<String>,
    pub lag_ms: u64,
    /// How long a task with no new input waits before evaluating windows again.
    pub watermark_interval_ms: u64,
    /// The stream late tuples go to (field `late_tuple`); `None`: they are logged.
    pub late_stream: Option<String>,
    pub allowed_lateness_ms: u64,
}

/// A windowed bolt's whole window configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    pub window: WindowSpec,
    pub time: TimeSpec,
}

/// A `BaseWindowedBolt$Count` / `$Duration` argument, a plain number (a count for count
/// methods, milliseconds for duration ones), or `{"count": n}` / `{"ms": n}`.
fn size_arg(v: &Json, what: &str) -> Result<Size, ComponentError> {
    let bad = |why: String| ComponentError::Config(format!("{what}: {why}"));
    let positive = |n: Option<u64>| match n {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(bad(format!("expected a positive whole number, got {v}"))),
    };
    match v {
        Json::Number(n) => Ok(Size::Count(positive(n.as_u64())?)),
        Json::Object(o) => {
            let class = o.get("className").and_then(Json::as_str).unwrap_or("");
            let args = o
                .get("constructorArgs")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            if class.ends_with("Count") {
                return Ok(Size::Count(positive(args.first().and_then(Json::as_u64))?));
            }
            if class.ends_with("Duration") {
                let n = positive(args.first().and_then(Json::as_u64))?;
                let unit = args.get(1).and_then(Json::as_str).unwrap_or("MILLISECONDS");
                return Ok(Size::Duration(n.saturating_mul(unit_ms(unit).ok_or_else(
                    || {
                        bad(format!(
                            "unknown time unit {unit}: expected MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS"
                        ))
                    },
                )?)));
            }
            if let Some(n) = o.get("count") {
                return Ok(Size::Count(positive(n.as_u64())?));
            }
            if let Some(n) = o.get("ms") {
                return Ok(Size::Duration(positive(n.as_u64())?));
            }
            Err(bad(format!(
                "expected a BaseWindowedBolt$Count or $Duration component, got className \"{class}\""
            )))
        }
        _ => Err(bad(format!(
            "expected a BaseWindowedBolt$Count or $Duration, got {v}"
        ))),
    }
}

fn unit_ms(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_uppercase().as_str() {
        "MILLISECONDS" | "MS" => 1,
        "SECONDS" | "S" => 1_000,
        "MINUTES" => 60_000,
        "HOURS" => 3_600_000,
        "DAYS" => 86_400_000,
        _ => return None,
    })
}

/// A duration argument (`withLag`, `withWatermarkInterval`): a `$Duration` or milliseconds.
fn duration_arg(v: &Json, what: &str) -> Result<u64, ComponentError> {
    match (v, size_arg(v, what)?) {
        (Json::Number(_), Size::Count(ms)) => Ok(ms),
        (_, Size::Duration(ms)) => Ok(ms),
        _ => Err(ComponentError::Config(format!(
            "{what}: expected a BaseWindowedBolt$Duration, got a Count"
        ))),
    }
}

fn string_arg(v: &Json, what: &str) -> Result<String, ComponentError> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ComponentError::Config(format!("{what}: expected a name, got {v}")))
}

fn config_u64(config: &serde_json::Map<String, Json>, key: &str) -> Option<u64> {
    config.get(key).and_then(|v| match v {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

impl WindowConfig {
    /// The window of a bolt from its Flux `configMethods` (Storm's `withWindow(length[, slide])`,
    /// `withTumblingWindow(length)`, `withTimestampField(name)`, `withLag(duration)`,
    /// `withWatermarkInterval(duration)`, `withLateTupleStream(id)`, and Gale's
    /// `withAllowedLateness(duration)`), then its properties of the same names
    /// (`windowLength`, `slidingInterval`, `timestampField`, `lag`, ...), then the topology
    /// config's Storm keys ([`keys`]).
    pub fn from_args(
        args: &ComponentArgs,
        config: &serde_json::Map<String, Json>,
    ) -> Result<Self, ComponentError> {
        let mut length: Option<Size> = None;
        let mut slide: Option<Size> = None;
        let mut time = TimeSpec {
            timestamp_field: config
                .get(keys::TIMESTAMP_FIELD)
                .and_then(Json::as_str)
                .map(str::to_owned),
            lag_ms: config_u64(config, keys::TIMESTAMP_MAX_LAG_MS).unwrap_or(0),
            watermark_interval_ms: config_u64(config, keys::WATERMARK_EVENT_INTERVAL_MS)
                .unwrap_or(1000),
            late_stream: config
                .get(keys::LATE_TUPLE_STREAM)
                .and_then(Json::as_str)
                .map(str::to_owned),
            allowed_lateness_ms: config_u64(config, keys::ALLOWED_LATENESS_MS).unwrap_or(0),
        };
        if let Some(n) = config_u64(config, keys::WINDOW_LENGTH_COUNT) {
            length = Some(Size::Count(n));
        }
        if let Some(n) = config_u64(config, keys::WINDOW_LENGTH_DURATION_MS) {
            length = Some(Size::Duration(n));
        }
        if let Some(n) = config_u64(config, keys::SLIDING_INTERVAL_COUNT) {
            slide = Some(Size::Count(n));
        }
        if let Some(n) = config_u64(config, keys::SLIDING_INTERVAL_DURATION_MS) {
            slide = Some(Size::Duration(n));
        }
        let mut apply = |name: &str, a: &[Json]| -> Result<(), ComponentError> {
            match (name, a) {
                ("withWindow", [len, sl]) => {
                    length = Some(size_arg(len, "withWindow's window length")?);
                    slide = Some(size_arg(sl, "withWindow's sliding interval")?);
                }
                // Storm's withWindow(length) slides by one tuple.
                ("withWindow", [len]) => {
                    length = Some(size_arg(len, "withWindow's window length")?);
                    slide = Some(Size::Count(1));
                }
                ("withTumblingWindow", [len]) => {
                    let l = size_arg(len, "withTumblingWindow's window length")?;
                    length = Some(l);
                    slide = Some(l);
                }
                ("withTimestampField", [f]) => {
                    time.timestamp_field = Some(string_arg(f, "withTimestampField")?)
                }
                ("withLag", [d]) => time.lag_ms = duration_arg(d, "withLag")?,
                ("withWatermarkInterval", [d]) => {
                    time.watermark_interval_ms = duration_arg(d, "withWatermarkInterval")?
                }
                ("withLateTupleStream", [s]) => {
                    time.late_stream = Some(string_arg(s, "withLateTupleStream")?)
                }
                ("withAllowedLateness", [d]) => {
                    time.allowed_lateness_ms = duration_arg(d, "withAllowedLateness")?
                }
                (other, a) => {
                    return Err(ComponentError::Config(format!(
                        "unknown config method {other} with {} argument(s); a windowed bolt takes withWindow(length[, slide]), withTumblingWindow(length), withTimestampField(name), withLag(duration), withWatermarkInterval(duration), withLateTupleStream(stream) and withAllowedLateness(duration)",
                        a.len()
                    )));
                }
            }
            Ok(())
        };
        for (name, a) in &args.config_methods {
            apply(name, a)?;
        }
        // Properties, as Gale's short form: windowLength / slidingInterval are counts when
        // plain numbers, or `$Count` / `$Duration` components; windowLengthMs / slidingIntervalMs
        // are milliseconds.
        let p = &args.properties;
        if let Some(v) = p.get("windowLength") {
            length = Some(size_arg(v, "property windowLength")?);
            slide = length;
        }
        if let Some(v) = p.get("windowLengthMs") {
            length = Some(Size::Duration(duration_arg(v, "property windowLengthMs")?));
            slide = length;
        }
        if let Some(v) = p.get("slidingInterval") {
            slide = Some(size_arg(v, "property slidingInterval")?);
        }
        if let Some(v) = p.get("slidingIntervalMs") {
            slide = Some(Size::Duration(duration_arg(
                v,
                "property slidingIntervalMs",
            )?));
        }
        if let Some(v) = p.get("timestampField") {
            time.timestamp_field = Some(string_arg(v, "property timestampField")?);
        }
        if let Some(v) = p.get("lagMs") {
            time.lag_ms = duration_arg(v, "property lagMs")?;
        }
        if let Some(v) = p.get("watermarkIntervalMs") {
            time.watermark_interval_ms = duration_arg(v, "property watermarkIntervalMs")?;
        }
        if let Some(v) = p.get("lateTupleStream") {
            time.late_stream = Some(string_arg(v, "property lateTupleStream")?);
        }
        if let Some(v) = p.get("allowedLatenessMs") {
            time.allowed_lateness_ms = duration_arg(v, "property allowedLatenessMs")?;
        }
        let length = length.ok_or_else(|| {
            ComponentError::Config(
                "no window given: add configMethods withWindow(length, slide) or withTumblingWindow(length) (BaseWindowedBolt$Count or $Duration), or properties windowLength / windowLengthMs".into(),
            )
        })?;
        let slide = slide.unwrap_or(length);
        let c = WindowConfig {
            window: WindowSpec { length, slide },
            time,
        };
        c.check()?;
        Ok(c)
    }

    /// Combinations Gale does not run, refused with what to do.
    pub fn check(&self) -> Result<(), ComponentError> {
        let WindowSpec { length, slide } = self.window;
        match (length, slide) {
            (Size::Count(_), Size::Count(_)) | (Size::Duration(_), Size::Duration(_)) => {}
            _ => {
                return Err(ComponentError::Config(format!(
                    "a window of {length:?} sliding by {slide:?}: Gale's windows are counts sliding by counts or durations sliding by durations"
                )));
            }
        }
        if let (Size::Count(_), Some(f)) = (length, &self.time.timestamp_field) {
            return Err(ComponentError::Config(format!(
                "count windows with a timestamp field ({f}) are not supported: use a $Duration window for event time"
            )));
        }
        if self.time.watermark_interval_ms == 0 {
            return Err(ComponentError::Config(
                "the watermark interval must be at least 1 ms".into(),
            ));
        }
        Ok(())
    }

    /// Storm's validation against the topology config: a time window's length plus slide
    /// within the message timeout, a count window's within max spout pending (the tuples of
    /// a window stay unacked until they expire). `None` when it fits, else why not.
    pub fn fits(
        &self,
        message_timeout_secs: u64,
        max_spout_pending: Option<u64>,
    ) -> Option<String> {
        match (self.window.length, self.window.slide) {
            (Size::Duration(l), Size::Duration(s)) => {
                let total = l.saturating_add(s).saturating_add(self.time.lag_ms);
                (total > message_timeout_secs.saturating_mul(1000)).then(|| format!(
                    "the window length ({l} ms) plus its slide ({s} ms) and lag ({} ms) exceeds topology.message.timeout.secs ({message_timeout_secs} s): tuples would time out before their window expires; raise the timeout or shorten the window",
                    self.time.lag_ms
                ))
            }
            (Size::Count(l), Size::Count(s)) => max_spout_pending.and_then(|p| {
                (l.saturating_add(s) > p).then(|| format!(
                    "the window length ({l}) plus its slide ({s}) exceeds topology.max.spout.pending ({p}): a window could never fill; raise max spout pending or shorten the window"
                ))
            }),
            _ => None,
        }
    }
}

/// The watermark of one bolt task's inputs: per upstream (stream, task) the highest timestamp
/// it sent; the watermark is the smallest of them minus the lag, once every upstream task has
/// sent one. Upstream tasks are keyed by a number the caller picks (say, source index and task).
#[derive(Debug, Clone)]
pub struct Watermarks {
    highest: BTreeMap<u64, i64>,
    expected: usize,
    lag: i64,
    current: Option<i64>,
}

impl Watermarks {
    /// `expected`: how many upstream tasks there are (0: the watermark follows whichever have
    /// sent something).
    pub fn new(expected: usize, lag_ms: u64) -> Self {
        Watermarks {
            highest: BTreeMap::new(),
            expected,
            lag: lag_ms.min(i64::MAX as u64 / 2) as i64,
            current: None,
        }
    }

    /// Records a tuple of time `ts` from upstream `source`; returns the watermark (moved
    /// forward if it can).
    pub fn observe(&mut self, source: u64, ts: i64) -> Option<i64> {
        let h = self.highest.entry(source).or_insert(i64::MIN);
        if ts > *h {
            let was = *h;
            *h = ts;
            // Only a task at the minimum can move it.
            if self.highest.len() >= self.expected
                && (was == i64::MIN
                    || self
                        .current
                        .is_none_or(|w| was.saturating_sub(self.lag) <= w))
            {
                let min = self.highest.values().copied().min().unwrap_or(i64::MIN);
                self.advance(min.saturating_sub(self.lag));
            }
        }
        self.current
    }

    /// The watermark of one upstream task alone: the highest timestamp it sent, minus the lag.
    /// A tuple older than this is late. It depends only on that task's own sequence, and is
    /// never below the watermark windows fire at, so a tuple that is not late finds its windows
    /// open.
    pub fn of_source(&self, source: u64) -> Option<i64> {
        self.highest
            .get(&source)
            .filter(|h| **h != i64::MIN)
            .map(|h| h.saturating_sub(self.lag))
    }

    /// The input ended: the watermark goes to the end.
    pub fn end(&mut self) -> i64 {
        self.current = Some(i64::MAX);
        i64::MAX
    }

    /// Moves the watermark to `w` if that is forward (processing time: the clock).
    pub fn advance(&mut self, w: i64) -> Option<i64> {
        if self.current.is_none_or(|c| w > c) {
            self.current = Some(w);
        }
        self.current
    }

    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// Each upstream's highest timestamp (what a checkpoint keeps, with [`Self::current`]).
    pub fn highest(&self) -> &BTreeMap<u64, i64> {
        &self.highest
    }

    /// Back to a checkpoint's highest timestamps and watermark.
    pub fn restore(&mut self, highest: BTreeMap<u64, i64>, current: Option<i64>) {
        self.highest = highest;
        self.current = current;
    }
}

/// A window that fired: its bounds, and which of the held tuples it holds, which arrived since
/// the last window fired, and which expired since then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired<T> {
    /// `end - length` (exclusive); `None` for count windows.
    pub start: Option<i64>,
    /// Inclusive; for count windows, the time it fired.
    pub end: i64,
    pub tuples: Vec<T>,
    pub new: Vec<T>,
    pub expired: Vec<T>,
}

/// Where a tuple went.
#[derive(Debug, PartialEq, Eq)]
pub enum Added<T> {
    /// Held for its windows.
    Held,
    /// Behind the watermark (and the allowed lateness): the caller sends it to the late stream.
    Late(T),
}

/// Time windows over held tuples, event time or processing time (timestamps are arrival
/// times, the watermark the clock).
#[derive(Debug, Clone)]
pub struct TimeWindows<T> {
    length: i64,
    slide: i64,
    allowed_lateness: i64,
    /// Held tuples by (timestamp, arrival), oldest first.
    held: BTreeMap<(i64, u64), T>,
    seq: u64,
    /// The end of the last window fired.
    last_end: Option<i64>,
    /// The watermark windows were last evaluated at.
    watermark: Option<i64>,
    /// Tuples expired since the last window fired.
    expired: Vec<T>,
    /// Arrival number of the first tuple not yet in a fired window's `new`.
    new_from: u64,
    /// Windows to fire again: ends of fired windows a tuple within the allowed lateness joined.
    refire: std::collections::BTreeSet<i64>,
}

/// The first multiple of `step` at or after `t`.
fn align_up(t: i64, step: i64) -> i64 {
    let r = t.rem_euclid(step);
    if r == 0 {
        t
    } else {
        t.saturating_add(step - r)
    }
}

impl<T: Clone> TimeWindows<T> {
    pub fn new(length_ms: u64, slide_ms: u64, allowed_lateness_ms: u64) -> Self {
        let clamp = |v: u64| v.clamp(1, i64::MAX as u64 / 4) as i64;
        TimeWindows {
            length: clamp(length_ms),
            slide: clamp(slide_ms),
            allowed_lateness: allowed_lateness_ms.min(i64::MAX as u64 / 4) as i64,
            held: BTreeMap::new(),
            seq: 0,
            last_end: None,
            watermark: None,
            expired: Vec::new(),
            new_from: 0,
            refire: Default::default(),
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The held tuples, oldest first (what a checkpoint of open windows keeps).
    pub fn held_tuples(&self) -> impl Iterator<Item = (i64, &T)> {
        self.held.iter().map(|((ts, _), t)| (*ts, t))
    }

    /// Takes a tuple of time `ts`: late when older than `watermark` (`ts < W`: the watermark of
    /// the upstream task it came from, [`Watermarks::of_source`]), unless within the allowed
    /// lateness, when it joins its windows and those already fired fire again.
    pub fn add(&mut self, ts: i64, t: T, watermark: Option<i64>) -> Added<T> {
        if let Some(w) = watermark
            && ts < w
        {
            if ts < w.saturating_sub(self.allowed_lateness) || self.allowed_lateness == 0 {
                return Added::Late(t);
            }
            // Fired windows holding ts: ends in [ts, ts + length), aligned, at most last_end.
            if let Some(last) = self.last_end {
                let mut e = align_up(ts, self.slide);
                while e < ts.saturating_add(self.length) && e <= last {
                    self.refire.insert(e);
                    e = e.saturating_add(self.slide);
                }
            }
        }
        self.seq += 1;
        self.held.insert((ts, self.seq), t);
        Added::Held
    }

    /// The windows the watermark `w` completes (ends before `w`), oldest first. Windows with
    /// no tuples are skipped; after each window, tuples no later window holds expire (kept
    /// while the allowed lateness may still need them).
    pub fn advance(&mut self, w: i64) -> Vec<Fired<T>> {
        let mut out = Vec::new();
        if self.watermark.is_some_and(|old| w <= old) && self.refire.is_empty() {
            return out;
        }
        if self.watermark.is_none_or(|old| w > old) {
            self.watermark = Some(w);
        }
        // Windows fired before that a late tuple joined: again, with their tuples now.
        for end in std::mem::take(&mut self.refire) {
            let tuples = self.window_tuples(end);
            if !tuples.is_empty() {
                out.push(self.fired(end, tuples));
            }
        }
        loop {
            // The oldest tuple of a window not fired yet: after the last fired window, the next
            // one starts (exclusive) at last + slide - length.
            let from = match self.last_end {
                Some(l) => l
                    .saturating_add(self.slide)
                    .saturating_sub(self.length)
                    .saturating_add(1),
                None => i64::MIN,
            };
            let Some((&(first_ts, _), _)) = self.held.range((from, 0)..).next() else {
                break;
            };
            // The first window holding it, aligned to the slide, after the last fired.
            let mut end = align_up(first_ts, self.slide);
            if let Some(l) = self.last_end {
                end = end.max(l.saturating_add(self.slide));
            }
            if end >= w || end == i64::MAX {
                break;
            }
            // (Empty when the slide is longer than the window and the tuple falls between.)
            let tuples = self.window_tuples(end);
            if !tuples.is_empty() {
                out.push(self.fired(end, tuples));
            }
            self.last_end = Some(end);
            self.expire();
        }
        if w == i64::MAX {
            // The end: nothing is held any more.
            let rest: Vec<T> = std::mem::take(&mut self.held).into_values().collect();
            self.expired.extend(rest);
        }
        out
    }

    fn window_tuples(&self, end: i64) -> Vec<T> {
        self.held
            .range((end.saturating_sub(self.length).saturating_add(1), 0)..=(end, u64::MAX))
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn fired(&mut self, end: i64, tuples: Vec<T>) -> Fired<T> {
        let new: Vec<T> = self
            .held
            .range((end.saturating_sub(self.length).saturating_add(1), 0)..=(end, u64::MAX))
            .filter(|((_, seq), _)| *seq > self.new_from)
            .map(|(_, t)| t.clone())
            .collect();
        self.new_from = self.seq;
        Fired {
            start: Some(end.saturating_sub(self.length)),
            end,
            tuples,
            new,
            expired: std::mem::take(&mut self.expired),
        }
    }

    /// Tuples no window after the last fired holds, and no late tuple can bring back.
    fn expire(&mut self) {
        let Some(last) = self.last_end else { return };
        // The next window holds (last + slide - length, ...]; a re-fire within the allowed
        // lateness may need tuples back to watermark - lateness - length.
        let mut keep_from = last.saturating_add(self.slide).saturating_sub(self.length);
        if self.allowed_lateness > 0
            && let Some(w) = self.watermark
        {
            keep_from = keep_from.min(
                w.saturating_sub(self.allowed_lateness)
                    .saturating_sub(self.length),
            );
        }
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > keep_from {
                break;
            }
            self.expired.push(entry.remove());
        }
    }

    /// Tuples that expired and were not handed out with a window (the caller acks them).
    pub fn take_expired(&mut self) -> Vec<T> {
        std::mem::take(&mut self.expired)
    }

    /// The end of the last window fired, and the watermark windows were last evaluated at
    /// (what a checkpoint keeps, with [`Self::held_tuples`]).
    pub fn marks(&self) -> (Option<i64>, Option<i64>) {
        (self.last_end, self.watermark)
    }

    /// Back to a checkpoint: these tuples held, these marks.
    pub fn restore(
        &mut self,
        held: Vec<(i64, T)>,
        (last_end, watermark): (Option<i64>, Option<i64>),
    ) {
        self.held.clear();
        self.seq = 0;
        for (ts, t) in held {
            self.seq += 1;
            self.held.insert((ts, self.seq), t);
        }
        self.new_from = 0;
        self.last_end = last_end;
        self.watermark = watermark;
        self.expired.clear();
        self.refire.clear();
    }
}

/// Count windows (Storm's `Count`): the last `length` tuples, evaluated every `slide` tuples.
#[derive(Debug, Clone)]
pub struct CountWindows<T> {
    length: usize,
    slide: usize,
    window: VecDeque<T>,
    fresh: usize,
    expired: Vec<T>,
    fired: i64,
}

impl<T: Clone> CountWindows<T> {
    pub fn new(length: u64, slide: u64) -> Self {
        let c = |v: u64| v.clamp(1, 10_000_000) as usize;
        CountWindows {
            length: c(length),
            slide: c(slide),
            window: VecDeque::new(),
            fresh: 0,
            expired: Vec::new(),
            fired: 0,
        }
    }

    /// Adds a tuple; the window, when this tuple completes a slide.
    pub fn add(&mut self, t: T) -> Option<Fired<T>> {
        self.window.push_back(t);
        self.fresh += 1;
        if self.window.len() > self.length
            && let Some(old) = self.window.pop_front()
        {
            self.expired.push(old);
        }
        if self.fresh < self.slide {
            return None;
        }
        let new = self
            .window
            .iter()
            .skip(self.window.len().saturating_sub(self.fresh))
            .cloned()
            .collect();
        self.fresh = 0;
        self.fired += 1;
        Some(Fired {
            start: None,
            end: self.fired,
            tuples: self.window.iter().cloned().collect(),
            new,
            expired: std::mem::take(&mut self.expired),
        })
    }

    pub fn held(&self) -> usize {
        self.window.len()
    }

    /// The input ended: every held tuple expires (no partial window fires, as Storm).
    pub fn end(&mut self) -> Vec<T> {
        let mut out = std::mem::take(&mut self.expired);
        out.extend(self.window.drain(..));
        out
    }

    pub fn take_expired(&mut self) -> Vec<T> {
        std::mem::take(&mut self.expired)
    }

    /// The window's tuples, oldest first, and how many arrived since it last fired.
    pub fn held_tuples(&self) -> (impl Iterator<Item = &T>, usize) {
        (self.window.iter(), self.fresh)
    }

    /// Back to a checkpoint.
    pub fn restore(&mut self, window: Vec<T>, fresh: usize) {
        self.window = window.into();
        self.fresh = fresh;
        self.expired.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Runs events (ts, id) through one upstream's watermark and time windows, as the runtime
    /// does: a tuple behind the watermark is late; the rest join their windows, which fire as
    /// the watermark passes; at the end every open window fires. Returns the windows (end,
    /// sorted ids) and the late ids.
    fn run(
        events: &[(i64, u32)],
        length: u64,
        slide: u64,
        lag: u64,
    ) -> (Vec<(i64, Vec<u32>)>, Vec<u32>) {
        let mut marks = Watermarks::new(1, lag);
        let mut windows = TimeWindows::new(length, slide, 0);
        let mut fired = Vec::new();
        let mut late = Vec::new();
        for &(ts, id) in events {
            if let Added::Late(id) = windows.add(ts, id, marks.of_source(0)) {
                late.push(id);
            }
            if let Some(w) = marks.observe(0, ts) {
                fired.extend(windows.advance(w));
            }
        }
        fired.extend(windows.advance(marks.end()));
        let fired = fired
            .into_iter()
            .map(|f| {
                let mut ids = f.tuples;
                ids.sort();
                (f.end, ids)
            })
            .collect();
        (fired, late)
    }

    /// The windows of `events` computed directly: every slide-aligned end whose window
    /// (end - length, end] holds an event, with the events it holds.
    fn independent(events: &[(i64, u32)], length: i64, slide: i64) -> Vec<(i64, Vec<u32>)> {
        let mut ends = BTreeSet::new();
        for &(ts, _) in events {
            let mut e = align_up(ts, slide);
            while e - length < ts {
                ends.insert(e);
                e += slide;
            }
        }
        ends.into_iter()
            .map(|e| {
                let mut ids: Vec<u32> = events
                    .iter()
                    .filter(|(ts, _)| e - length < *ts && *ts <= e)
                    .map(|(_, id)| *id)
                    .collect();
                ids.sort();
                (e, ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect()
    }

    fn spec() -> impl Strategy<Value = (u64, u64)> {
        prop_oneof![
            (1u64..50).prop_map(|l| (l, l)),
            (1u64..20).prop_flat_map(|s| (s..80).prop_map(move |l| (l, s))),
            // Hopping windows with gaps between them.
            (1u64..20).prop_flat_map(|l| (l..40).prop_map(move |s| (l, s))),
        ]
    }

    proptest! {
        /// Input shuffled within the lag fires the same windows with the same contents as the
        /// sorted input, and as a direct computation; nothing is late.
        #[test]
        fn shuffled_within_the_lag_fires_what_sorted_input_fires(
            gaps in proptest::collection::vec(0i64..15, 1..120),
            delays in proptest::collection::vec(0u64..=30, 120),
            (length, slide) in spec(),
            lag in 0u64..30,
            start in -1_000i64..1_000,
        ) {
            let mut ts = start;
            let sorted: Vec<(i64, u32)> = gaps.iter().enumerate().map(|(i, g)| { ts += g; (ts, i as u32) }).collect();
            // Each event delayed by at most the lag: arrival order by ts + delay.
            let mut shuffled = sorted.clone();
            shuffled.sort_by_key(|&(ts, id)| (ts + (delays[id as usize] % (lag + 1)) as i64, id));
            let (a, late_a) = run(&sorted, length, slide, lag);
            let (b, late_b) = run(&shuffled, length, slide, lag);
            prop_assert!(late_a.is_empty());
            prop_assert!(late_b.is_empty(), "late: {:?}", late_b);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a, independent(&sorted, length as i64, slide as i64));
        }

        /// Late tuples are exactly those older than the watermark when they arrive (the highest
        /// timestamp before them minus the lag), and every other tuple is in exactly the
        /// windows a direct computation puts it in.
        #[test]
        fn late_tuples_are_exactly_those_behind_the_watermark(
            times in proptest::collection::vec(-200i64..200, 1..150),
            (length, slide) in spec(),
            lag in 0u64..40,
        ) {
            let events: Vec<(i64, u32)> = times.iter().enumerate().map(|(i, t)| (*t, i as u32)).collect();
            let (fired, late) = run(&events, length, slide, lag);
            let mut expect_late = Vec::new();
            let mut on_time = Vec::new();
            let mut highest: Option<i64> = None;
            for &(ts, id) in &events {
                if highest.is_some_and(|h| ts < h - lag as i64) {
                    expect_late.push(id);
                } else {
                    on_time.push((ts, id));
                }
                highest = highest.max(Some(ts));
            }
            prop_assert_eq!(late, expect_late);
            prop_assert_eq!(fired, independent(&on_time, length as i64, slide as i64));
        }

        /// The watermark is the smallest of the upstream tasks' highest timestamps minus the lag,
        /// known once each has sent one, and never moves back.
        #[test]
        fn the_watermark_is_the_slowest_upstream_minus_the_lag(
            sends in proptest::collection::vec((0u64..3, -100i64..100), 1..80),
            lag in 0u64..20,
        ) {
            let mut marks = Watermarks::new(3, lag);
            let mut highest: BTreeMap<u64, i64> = BTreeMap::new();
            let mut last: Option<i64> = None;
            for (src, ts) in sends {
                let w = marks.observe(src, ts);
                let h = highest.entry(src).or_insert(ts);
                *h = (*h).max(ts);
                let expect = (highest.len() == 3)
                    .then(|| highest.values().min().unwrap() - lag as i64)
                    .map(|m| last.map_or(m, |l| l.max(m)));
                prop_assert_eq!(w, expect);
                last = w;
            }
        }
    }

    proptest! {
        /// Two upstream tasks, their tuples interleaved in any order (as the tasks' speeds
        /// make them): the late tuples are the same for every interleaving (each judged by its
        /// own task's sequence), and every other tuple is in exactly its windows (none fired
        /// before it arrived).
        #[test]
        fn lateness_does_not_depend_on_how_upstream_tasks_interleave(
            a in proptest::collection::vec(-100i64..300, 0..60),
            b in proptest::collection::vec(-100i64..300, 0..60),
            order in proptest::collection::vec(any::<bool>(), 120),
            (length, slide) in spec(),
            lag in 0u64..40,
        ) {
            let mut marks = Watermarks::new(2, lag);
            let mut windows = TimeWindows::new(length, slide, 0);
            let (mut i, mut j) = (0, 0);
            let mut fired = Vec::new();
            let mut late = BTreeSet::new();
            for pick_a in order.iter().copied().chain(std::iter::repeat_n(true, 120)).chain(std::iter::repeat_n(false, 120)) {
                let (src, ts, id) = if pick_a && i < a.len() {
                    i += 1;
                    (0, a[i - 1], i as u32 - 1)
                } else if !pick_a && j < b.len() {
                    j += 1;
                    (1, b[j - 1], 1000 + j as u32 - 1)
                } else {
                    continue;
                };
                if let Added::Late(id) = windows.add(ts, id, marks.of_source(src)) {
                    late.insert(id);
                }
                if let Some(w) = marks.observe(src, ts) {
                    fired.extend(windows.advance(w));
                }
            }
            fired.extend(windows.advance(marks.end()));
            let mut expect_late = BTreeSet::new();
            let mut on_time = Vec::new();
            for (seq, base) in [(&a, 0u32), (&b, 1000)] {
                let mut highest: Option<i64> = None;
                for (k, &ts) in seq.iter().enumerate() {
                    if highest.is_some_and(|h| ts < h - lag as i64) {
                        expect_late.insert(base + k as u32);
                    } else {
                        on_time.push((ts, base + k as u32));
                    }
                    highest = highest.max(Some(ts));
                }
            }
            prop_assert_eq!(late, expect_late);
            let fired: Vec<(i64, Vec<u32>)> = fired.into_iter().map(|f| { let mut t = f.tuples; t.sort(); (f.end, t) }).collect();
            prop_assert_eq!(fired, independent(&on_time, length as i64, slide as i64));
        }
    }

    #[test]
    fn a_late_tuple_within_the_allowed_lateness_fires_its_window_again() {
        let mut w = TimeWindows::new(10, 10, 20);
        assert_eq!(w.add(5, 'a', None), Added::Held);
        assert_eq!(w.add(15, 'b', None), Added::Held);
        let fired = w.advance(12);
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].end, fired[0].tuples.clone()), (10, vec!['a']));
        // Behind the watermark (12) by less than 20: window (0, 10] fires again, with it.
        assert_eq!(w.add(7, 'c', Some(12)), Added::Held);
        let again = w.advance(12);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].end, again[0].tuples.clone()),
            (10, vec!['a', 'c'])
        );
        assert_eq!(again[0].new, vec!['c']);
        // Further behind than the allowed lateness: late.
        w.advance(40);
        assert_eq!(w.add(3, 'd', Some(40)), Added::Late('d'));
    }

    #[test]
    fn count_windows_slide_and_expire_as_storms() {
        let mut w = CountWindows::new(5, 3);
        let mut fired = Vec::new();
        for i in 0..10 {
            if let Some(f) = w.add(i) {
                fired.push((f.tuples, f.new, f.expired));
            }
        }
        assert_eq!(
            fired,
            vec![
                (vec![0, 1, 2], vec![0, 1, 2], vec![]),
                (vec![1, 2, 3, 4, 5], vec![3, 4, 5], vec![0]),
                (vec![4, 5, 6, 7, 8], vec![6, 7, 8], vec![1, 2, 3]),
            ]
        );
        assert_eq!(w.end(), vec![4, 5, 6, 7, 8, 9]);
    }

    fn cm(name: &str, args: Vec<Json>) -> ComponentArgs {
        ComponentArgs {
            config_methods: vec![(name.to_owned(), args)],
            ..ComponentArgs::default()
        }
    }

    #[test]
    fn storms_flux_forms_are_read() {
        use serde_json::json;
        let dur = |n: u64, unit: &str| json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Duration", "constructorArgs": [n, unit]});
        let count = |n: u64| json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Count", "constructorArgs": [n]});
        let mut args = cm("withWindow", vec![dur(10, "SECONDS"), dur(5, "SECONDS")]);
        args.config_methods
            .push(("withTimestampField".into(), vec![json!("ts")]));
        args.config_methods
            .push(("withLag".into(), vec![dur(5, "SECONDS")]));
        args.config_methods
            .push(("withLateTupleStream".into(), vec![json!("late")]));
        let c = WindowConfig::from_args(&args, &Default::default()).unwrap();
        assert_eq!(
            c.window,
            WindowSpec {
                length: Size::Duration(10_000),
                slide: Size::Duration(5_000)
            }
        );
        assert_eq!(c.time.timestamp_field.as_deref(), Some("ts"));
        assert_eq!(
            (c.time.lag_ms, c.time.late_stream.as_deref()),
            (5_000, Some("late"))
        );
        let c = WindowConfig::from_args(
            &cm("withWindow", vec![count(5), count(3)]),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            c.window,
            WindowSpec {
                length: Size::Count(5),
                slide: Size::Count(3)
            }
        );
        let c = WindowConfig::from_args(&cm("withWindow", vec![count(5)]), &Default::default())
            .unwrap();
        assert_eq!(c.window.slide, Size::Count(1));
        // Storm's keys, when no method sets the window.
        let mut config = serde_json::Map::new();
        config.insert(keys::WINDOW_LENGTH_DURATION_MS.into(), json!(3000));
        let c = WindowConfig::from_args(&ComponentArgs::default(), &config).unwrap();
        assert_eq!(
            c.window,
            WindowSpec {
                length: Size::Duration(3000),
                slide: Size::Duration(3000)
            }
        );
        assert!(c.fits(2, None).is_some(), "3 s + 3 s > 2 s");
        assert_eq!(c.fits(30, None), None);
        // Mixed, unknown units, unknown methods and nothing at all are refused with what to do.
        for (args, needle) in [
            (
                cm("withWindow", vec![count(5), dur(1, "SECONDS")]),
                "counts sliding by counts",
            ),
            (
                cm("withTumblingWindow", vec![dur(1, "WEEKS")]),
                "unknown time unit",
            ),
            (cm("withFoo", vec![]), "withTumblingWindow(length)"),
            (ComponentArgs::default(), "no window given"),
        ] {
            let e = WindowConfig::from_args(&args, &Default::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
