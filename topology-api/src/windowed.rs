//! Windowed bolts, as Storm's `IWindowedBolt`: the bolt is handed whole windows of tuples; the
//! runtime's [`WindowedBoltAdapter`] keeps the tuples, the watermark and the clock, fires the
//! windows ([`crate::window`]), sends late tuples on, anchors emits and acks tuples when they
//! expire.

use crate::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Emission, OutputDeclarer, OutputSink,
    TopologyContext,
};
use crate::lane::Lane;
use crate::tuple::Tuple;
use crate::value::{Fields, Value, Values};
use crate::window::{
    Added, CountWindows, Fired, LATE_TUPLE_FIELD, Size, TimeWindows, Watermarks, WindowConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// A window a windowed bolt is handed (Storm's `TupleWindow`).
#[derive(Debug, Clone)]
pub struct Window {
    tuples: Vec<Arc<Tuple<'static>>>,
    new: Vec<Arc<Tuple<'static>>>,
    expired: Vec<Arc<Tuple<'static>>>,
    start: Option<i64>,
    end: i64,
}

impl Window {
    /// Every tuple in the window (Storm's `get()`), oldest first.
    pub fn get(&self) -> &[Arc<Tuple<'static>>] {
        &self.tuples
    }

    /// The tuples that arrived since the last window fired (`getNew()`).
    pub fn get_new(&self) -> &[Arc<Tuple<'static>>] {
        &self.new
    }

    /// The tuples that left the window since the last window fired (`getExpired()`).
    pub fn get_expired(&self) -> &[Arc<Tuple<'static>>] {
        &self.expired
    }

    /// The window's end, epoch ms (inclusive); for count windows, the time it fired.
    pub fn end_timestamp(&self) -> i64 {
        self.end
    }

    /// `end - length` (exclusive) for time windows; `None` for count windows.
    pub fn start_timestamp(&self) -> Option<i64> {
        self.start
    }

    fn of(f: Fired<Arc<Tuple<'static>>>) -> Self {
        Window {
            tuples: f.tuples,
            new: f.new,
            expired: f.expired,
            start: f.start,
            end: f.end,
        }
    }
}

/// Storm's `IWindowedBolt`. An emit with no anchors is anchored to every tuple of the window
/// (as Storm's windowed collector does); a bolt may anchor to fewer itself. Tuples are acked by
/// the runtime when they expire.
pub trait WindowedBolt: Send + 'static {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);

    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    fn execute(&mut self, window: &Window, out: &mut BoltCollector<'_>);

    fn cleanup(&mut self) {}
}

/// The sink a windowed bolt's `execute` writes through: an emit without anchors is anchored to
/// the window's tuples.
struct WindowSink<'s> {
    inner: &'s mut dyn OutputSink,
    window: &'s [Arc<Tuple<'static>>],
}

impl OutputSink for WindowSink<'_> {
    fn emit(&mut self, e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        if !e.anchors.is_empty() || self.window.is_empty() {
            return self.inner.emit(e, task_ids);
        }
        let anchors: Vec<&Tuple> = self.window.iter().map(|t| &**t).collect();
        self.inner.emit(
            Emission {
                anchors: &anchors,
                ..e
            },
            task_ids,
        );
    }

    fn emit_refs_anchored(&mut self, anchor: &Tuple<'_>, values: &[crate::ValueRef<'_>]) {
        self.inner.emit_refs_anchored(anchor, values);
    }

    fn set_input_born(&mut self, born_us: u64) {
        self.inner.set_input_born(born_us);
    }

    fn lane(&mut self) -> Option<&mut Lane> {
        self.inner.lane()
    }

    fn lane_full(&mut self, dest: usize) {
        self.inner.lane_full(dest);
    }

    fn ack(&mut self, input: &Tuple<'_>) {
        self.inner.ack(input);
    }

    fn fail(&mut self, input: &Tuple<'_>) {
        self.inner.fail(input);
    }

    fn report_error(&mut self, message: &str) {
        self.inner.report_error(message);
    }
}

enum Windows {
    Count(CountWindows<Arc<Tuple<'static>>>),
    Time(TimeWindows<Arc<Tuple<'static>>>),
}

/// Milliseconds since the epoch (processing time).
fn now_ms() -> i64 {
    (crate::tuple::now_us() / 1000) as i64
}

/// A [`WindowedBolt`] as a [`Bolt`]: what the registry builds for a windowed class.
pub struct WindowedBoltAdapter {
    bolt: Box<dyn WindowedBolt>,
    args: ComponentArgs,
    config: WindowConfig,
    windows: Windows,
    marks: Watermarks,
    /// Upstream (stream source, task) -> its key in `marks`.
    upstream: BTreeMap<(usize, u32), u64>,
    last_eval: Instant,
    /// Late tuples dropped (no late stream): reported once, then counted.
    late_dropped: u64,
    /// The timestamp field's position in the last stream seen: (stream source, index).
    ts_index: Option<(usize, Option<usize>)>,
}

impl WindowedBoltAdapter {
    /// The adapter of `bolt`, with the window of its Flux `configMethods` and properties (the
    /// topology's Storm keys are read again in `prepare`).
    pub fn new(bolt: Box<dyn WindowedBolt>, args: &ComponentArgs) -> Result<Self, ComponentError> {
        let config = WindowConfig::from_args(args, &serde_json::Map::new()).or_else(|e| {
            // The window may come from the topology config only: checked again in `prepare`.
            if e.to_string().contains("no window given") {
                Ok(WindowConfig {
                    window: crate::window::WindowSpec {
                        length: Size::Count(1),
                        slide: Size::Count(1),
                    },
                    time: Default::default(),
                })
            } else {
                Err(e)
            }
        })?;
        let mut a = WindowedBoltAdapter {
            bolt,
            args: args.clone(),
            windows: Windows::Count(CountWindows::new(1, 1)),
            marks: Watermarks::new(0, 0),
            config: config.clone(),
            upstream: BTreeMap::new(),
            last_eval: Instant::now(),
            late_dropped: 0,
            ts_index: None,
        };
        a.configure(config);
        Ok(a)
    }

    fn configure(&mut self, config: WindowConfig) {
        self.windows = match (config.window.length, config.window.slide) {
            (Size::Duration(l), Size::Duration(s)) => {
                Windows::Time(TimeWindows::new(l, s, config.time.allowed_lateness_ms))
            }
            (Size::Count(l), Size::Count(s)) => Windows::Count(CountWindows::new(l, s)),
            // Refused by `WindowConfig::check`.
            _ => Windows::Count(CountWindows::new(1, 1)),
        };
        // Upstream tasks are counted in `prepare`; until then, whichever have sent.
        self.marks = Watermarks::new(0, config.time.lag_ms);
        self.config = config;
    }

    fn event_time(&self) -> bool {
        self.config.time.timestamp_field.is_some()
    }

    /// Hands a fired window to the bolt, then acks what expired.
    fn fire(&mut self, f: Fired<Arc<Tuple<'static>>>, sink: &mut dyn OutputSink) {
        let w = Window::of(f);
        {
            let mut s = WindowSink {
                inner: sink,
                window: &w.tuples,
            };
            self.bolt.execute(&w, &mut BoltCollector::new(&mut s));
        }
        for t in &w.expired {
            sink.ack(t);
        }
    }

    fn ack_expired(&mut self, sink: &mut dyn OutputSink) {
        let expired = match &mut self.windows {
            Windows::Count(c) => c.take_expired(),
            Windows::Time(t) => t.take_expired(),
        };
        for t in &expired {
            sink.ack(t);
        }
    }

    /// Fires what the watermark `w` completes.
    fn advance(&mut self, w: i64, sink: &mut dyn OutputSink) {
        let fired = match &mut self.windows {
            Windows::Time(t) => t.advance(w),
            Windows::Count(_) => Vec::new(),
        };
        for f in fired {
            self.fire(f, sink);
        }
        self.ack_expired(sink);
        self.last_eval = Instant::now();
    }

    fn late(&mut self, t: &Tuple<'_>, ts: i64, sink: &mut dyn OutputSink) {
        match &self.config.time.late_stream {
            Some(stream) => {
                let mut v = Values::new();
                v.push(Value::List(t.to_values().into_iter().collect()));
                sink.emit(
                    Emission {
                        stream,
                        values: crate::emit::EmitValues::Owned(&v),
                        anchors: &[t],
                        message_id: None,
                        direct_task: None,
                    },
                    None,
                );
            }
            None => {
                self.late_dropped += 1;
                if self.late_dropped == 1 {
                    sink.report_error(&format!(
                        "a late tuple (timestamp {ts}, behind the watermark {:?}) was dropped; set withLateTupleStream or topology.bolts.late.tuple.stream to receive late tuples",
                        self.marks.current()
                    ));
                }
            }
        }
        sink.ack(t);
    }

    /// Where `field` is in `t`'s stream (looked up again only when the stream changes).
    fn timestamp_index(&mut self, t: &Tuple<'_>) -> Option<usize> {
        let src = std::ptr::from_ref(t.source()) as usize;
        match self.ts_index {
            Some((s, i)) if s == src => i,
            _ => {
                let field = self.config.time.timestamp_field.as_deref()?;
                let i = t.fields().index_of(field);
                self.ts_index = Some((src, i));
                i
            }
        }
    }

    fn upstream_key(&mut self, t: &Tuple<'_>) -> u64 {
        let k = (std::ptr::from_ref(t.source()) as usize, t.source_task());
        let n = self.upstream.len() as u64;
        *self.upstream.entry(k).or_insert(n)
    }
}

impl Bolt for WindowedBoltAdapter {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.bolt.declare_output_fields(d);
        if let Some(s) = &self.config.time.late_stream {
            d.declare_stream(s, Fields::new([LATE_TUPLE_FIELD]));
        }
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let config = WindowConfig::from_args(&self.args, &ctx.config)?;
        self.configure(config);
        // Every upstream task of every input stream but the checkpoint stream.
        let expected = ctx
            .inputs
            .iter()
            .filter(|(c, s)| !s.starts_with('$') && !c.starts_with("$"))
            .map(|(c, _)| ctx.tasks_of(c).len())
            .sum();
        self.marks = Watermarks::new(expected, self.config.time.lag_ms);
        self.bolt.prepare(ctx)
    }

    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        let sink = out.sink_mut();
        if matches!(self.windows, Windows::Count(_)) {
            let fired = match &mut self.windows {
                Windows::Count(c) => c.add(Arc::new(t.to_owned())),
                Windows::Time(_) => None,
            };
            if let Some(f) = fired {
                self.fire(f, sink);
            }
            return;
        }
        let ts = match self.event_time() {
            false => now_ms(),
            true => match self.timestamp_index(t).and_then(|i| t.get_int(i)) {
                Some(ts) => ts,
                None => {
                    sink.report_error(&format!(
                        "a tuple from {} has no integer timestamp in field {} (fields {:?}): dropped",
                        t.source_component(),
                        self.config.time.timestamp_field.as_deref().unwrap_or_default(),
                        t.fields()
                    ));
                    sink.ack(t);
                    return;
                }
            },
        };
        // Event time: judged by the watermark of the upstream task it came from.
        let key = self.event_time().then(|| self.upstream_key(t));
        let watermark = key.and_then(|k| self.marks.of_source(k));
        let added = match &mut self.windows {
            Windows::Time(w) => w.add(ts, Arc::new(t.to_owned()), watermark),
            Windows::Count(_) => Added::Held,
        };
        if let Added::Late(_) = added {
            self.late(t, ts, sink);
        }
        if let Some(key) = key
            && let Some(w) = self.marks.observe(key, ts)
        {
            self.advance(w, sink);
        }
    }

    fn auto_ack(&self) -> bool {
        false
    }

    fn wants_poll(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut BoltCollector<'_>, end: bool) {
        let sink = out.sink_mut();
        if end {
            // The input ended: every open window fires, then everything held expires.
            match &mut self.windows {
                Windows::Count(c) => {
                    for t in c.end() {
                        sink.ack(&t);
                    }
                }
                Windows::Time(_) => {
                    let w = self.marks.end();
                    self.advance(w, sink);
                }
            }
            return;
        }
        if matches!(self.windows, Windows::Time(_)) && !self.event_time() {
            // Processing time: the clock is the watermark. (Evaluated at most once a ms.)
            let now = now_ms();
            if self.marks.current().is_none_or(|w| now > w) {
                self.marks.advance(now);
                self.advance(now, sink);
            }
        }
    }

    fn cleanup(&mut self) {
        self.bolt.cleanup();
    }
}
