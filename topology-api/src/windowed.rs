//! Windowed bolts, as Storm's `IWindowedBolt`: the bolt is handed whole windows of tuples; the
//! runtime's [`WindowedBoltAdapter`] keeps the tuples, the watermark and the clock, fires the
//! windows ([`crate::window`]), sends late tuples on, anchors emits and acks tuples when they
//! expire.

use crate::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Emission, OutputDeclarer, OutputSink,
    TopologyContext,
};
use crate::lane::Lane;
use crate::tuple::{StreamSource, Tuple};
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
    /// Each key's upstream, by key.
    sources: Vec<(&'static StreamSource, u32)>,
    last_eval: Instant,
    /// Late tuples dropped (no late stream): reported once, then counted.
    late_dropped: u64,
    /// The timestamp field's position in the last stream seen: (stream source, index).
    ts_index: Option<(usize, Option<usize>)>,
    /// Upstream tasks (known in `prepare`).
    expected: usize,
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
            sources: Vec::new(),
            last_eval: Instant::now(),
            late_dropped: 0,
            ts_index: None,
            expected: 0,
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
        self.key_of(t.source(), t.source_task())
    }

    fn key_of(&mut self, source: &'static StreamSource, task: u32) -> u64 {
        let k = (std::ptr::from_ref(source) as usize, task);
        let n = self.upstream.len() as u64;
        *self.upstream.entry(k).or_insert_with(|| {
            self.sources.push((source, task));
            n
        })
    }

    /// The open windows' state as JSON: the held tuples (with their sources), each upstream's
    /// highest timestamp, the watermark and the last window fired. What a stateful windowed
    /// bolt checkpoints.
    pub fn snapshot(&self) -> serde_json::Value {
        let tuple = |ts: Option<i64>, t: &Tuple<'static>| {
            let s = t.source();
            serde_json::json!([
                ts,
                s.component,
                s.stream,
                s.fields,
                t.source_task(),
                t.to_values()
            ])
        };
        let highest: Vec<serde_json::Value> = self
            .marks
            .highest()
            .iter()
            .filter_map(|(k, ts)| {
                let (s, task) = self.sources.get(*k as usize)?;
                Some(serde_json::json!([
                    s.component,
                    s.stream,
                    s.fields,
                    task,
                    ts
                ]))
            })
            .collect();
        match &self.windows {
            Windows::Time(w) => {
                let held: Vec<serde_json::Value> =
                    w.held_tuples().map(|(ts, t)| tuple(Some(ts), t)).collect();
                let (last_end, watermark) = w.marks();
                serde_json::json!({"held": held, "last_end": last_end, "watermark": watermark,
                    "highest": highest, "current": self.marks.current()})
            }
            Windows::Count(c) => {
                let (held, fresh) = c.held_tuples();
                let held: Vec<serde_json::Value> = held.map(|t| tuple(None, t)).collect();
                serde_json::json!({"held": held, "fresh": fresh})
            }
        }
    }

    /// Back to a [`Self::snapshot`] (`None`: to no windows at all).
    pub fn restore(&mut self, snapshot: Option<&serde_json::Value>) -> Result<(), String> {
        self.configure(self.config.clone());
        let expected = self.expected;
        self.marks = Watermarks::new(expected, self.config.time.lag_ms);
        let Some(s) = snapshot else { return Ok(()) };
        type Row = (Option<i64>, String, String, Fields, u32, Values);
        let held: Vec<Row> =
            serde_json::from_value(s["held"].clone()).map_err(|e| format!("held tuples: {e}"))?;
        let held: Vec<(i64, Arc<Tuple<'static>>)> = held
            .into_iter()
            .map(|(ts, c, st, f, task, v)| {
                let src = StreamSource::intern(&c, &st, &f);
                (ts.unwrap_or(0), Arc::new(Tuple::new(src, task, v)))
            })
            .collect();
        match &mut self.windows {
            Windows::Time(w) => {
                let get = |k: &str| s[k].as_i64();
                w.restore(held, (get("last_end"), get("watermark")));
                let rows: Vec<(String, String, Fields, u32, i64)> =
                    serde_json::from_value(s["highest"].clone())
                        .map_err(|e| format!("highest timestamps: {e}"))?;
                let mut highest = BTreeMap::new();
                for (c, st, f, task, ts) in rows {
                    let key = self.key_of(StreamSource::intern(&c, &st, &f), task);
                    highest.insert(key, ts);
                }
                self.marks.restore(highest, s["current"].as_i64());
            }
            Windows::Count(c) => {
                let fresh = s["fresh"].as_u64().unwrap_or(0) as usize;
                c.restore(held.into_iter().map(|(_, t)| t).collect(), fresh);
            }
        }
        Ok(())
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
        self.expected = expected;
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

/// A windowed bolt whose open windows are checkpointed (Storm's `BaseStatefulWindowedBolt`):
/// the held tuples, each upstream's highest timestamp and the watermark are the task's state
/// (key `__windows`), so after a failure the task rolls back to the last committed checkpoint
/// and the spout rewinds to the position recorded with it: every window fires with the tuples
/// it would have had.
pub struct WindowedTask(pub WindowedBoltAdapter);

/// The state key of a windowed task's open windows.
pub const WINDOWS_KEY: &[u8] = b"__windows";

impl crate::state::StatefulTask for WindowedTask {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        Bolt::declare_output_fields(&self.0, d);
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        Bolt::prepare(&mut self.0, ctx)
    }

    fn init_state(
        &mut self,
        namespace: &str,
        stored: &crate::state::Stored,
    ) -> Result<(), crate::state::StateError> {
        let codec = |message: String| crate::state::StateError::Codec {
            namespace: namespace.to_owned(),
            what: "decode the open windows",
            message,
        };
        let snapshot = match stored.committed.iter().find(|(k, _)| k == WINDOWS_KEY) {
            Some((_, v)) => Some(serde_json::from_slice(v).map_err(|e| codec(e.to_string()))?),
            None => None,
        };
        self.0.restore(snapshot.as_ref()).map_err(codec)
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        Bolt::execute(&mut self.0, input, out);
    }

    fn execute_batch(
        &mut self,
        inputs: crate::component::Inputs<'_>,
        out: &mut BoltCollector<'_>,
        begin: bool,
    ) {
        for t in inputs {
            if begin {
                out.sink_mut().begin_input(&t);
            }
            Bolt::execute(&mut self.0, &t, out);
        }
    }

    fn prepare_commit(
        &mut self,
        namespace: &str,
        _txid: u64,
    ) -> Result<Vec<crate::state::Change>, crate::state::StateError> {
        let v = serde_json::to_vec(&self.0.snapshot()).map_err(|e| {
            crate::state::StateError::Codec {
                namespace: namespace.to_owned(),
                what: "encode the open windows",
                message: e.to_string(),
            }
        })?;
        Ok(vec![(WINDOWS_KEY.to_vec(), Some(v))])
    }

    fn pre_commit(&mut self, _txid: u64) {}

    fn pre_rollback(&mut self) {}

    fn wants_poll(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut BoltCollector<'_>, end: bool) {
        Bolt::poll(&mut self.0, out, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{
        Action, CHECKPOINT_COMPONENT, CHECKPOINT_FIELDS, CHECKPOINT_STREAM, StatefulBoltAdapter,
        checkpoint_values,
    };
    use crate::state::MemoryProvider;

    /// Emits (window end, tuples in it).
    struct Sizes;
    impl WindowedBolt for Sizes {
        fn declare_output_fields(&self, d: &mut OutputDeclarer) {
            d.declare(Fields::new(["end", "n"]));
        }
        fn execute(&mut self, w: &Window, out: &mut BoltCollector<'_>) {
            out.emit(crate::values![w.end_timestamp(), w.get().len() as i64]);
        }
    }

    #[derive(Default)]
    struct Rows(Vec<(i64, i64)>);
    impl OutputSink for Rows {
        fn emit(&mut self, e: Emission<'_>, _: Option<&mut Vec<u32>>) {
            if e.stream == "default" {
                let v = e.values.to_values();
                self.0
                    .push((v[0].as_int().unwrap(), v[1].as_int().unwrap()));
            }
        }
        fn ack(&mut self, _: &Tuple<'_>) {}
        fn fail(&mut self, _: &Tuple<'_>) {}
        fn report_error(&mut self, m: &str) {
            panic!("{m}");
        }
    }

    fn task(provider: &MemoryProvider) -> StatefulBoltAdapter {
        let mut args = ComponentArgs::default();
        args.properties.insert("windowLengthMs".into(), 10.into());
        args.properties.insert("timestampField".into(), "ts".into());
        let w = WindowedBoltAdapter::new(Box::new(Sizes), &args).unwrap();
        let mut b = StatefulBoltAdapter::new(Box::new(WindowedTask(w)));
        let ctx = TopologyContext {
            topology_name: "t".into(),
            component_id: "w".into(),
            task_id: 3,
            component_tasks: Arc::new(BTreeMap::from([
                (CHECKPOINT_COMPONENT.to_owned(), vec![9]),
                ("parse".to_owned(), vec![1]),
                ("w".to_owned(), vec![3]),
            ])),
            config: Arc::default(),
            resources_dir: ".".into(),
            inputs: vec![
                ("parse".into(), "default".into()),
                (CHECKPOINT_COMPONENT.into(), CHECKPOINT_STREAM.into()),
            ],
            state: Some(Arc::new(provider.clone())),
            inputs_ended: None,
            checkpoints_done: None,
        };
        b.prepare(&ctx).unwrap();
        b
    }

    /// Processing time: windows fire on the clock, without new input, and empty ones are not
    /// evaluated.
    #[test]
    fn processing_time_windows_fire_on_the_clock() {
        let mut args = ComponentArgs::default();
        args.properties.insert("windowLengthMs".into(), 40.into());
        let mut w = WindowedBoltAdapter::new(Box::new(Sizes), &args).unwrap();
        let src = StreamSource::intern("parse", "default", &Fields::new(["ts"]));
        let mut rows = Rows::default();
        for i in 0..3 {
            w.execute(
                &Tuple::new(src, 1, crate::values![i as i64]),
                &mut BoltCollector::new(&mut rows),
            );
        }
        let start = Instant::now();
        // Bounded: at most 5 s of polling, every ms.
        while rows.0.iter().map(|r| r.1).sum::<i64>() < 3 && start.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            w.poll(&mut BoltCollector::new(&mut rows), false);
        }
        assert_eq!(rows.0.iter().map(|r| r.1).sum::<i64>(), 3, "{:?}", rows.0);
        assert!(
            rows.0.len() <= 2,
            "the 3 tuples in one window or two: {:?}",
            rows.0
        );
        assert!(rows.0.iter().all(|(end, _)| end % 40 == 0), "aligned ends");
        // Three more window lengths without input: nothing is evaluated.
        let fired = rows.0.len();
        let quiet = Instant::now();
        while quiet.elapsed().as_millis() < 150 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            w.poll(&mut BoltCollector::new(&mut rows), false);
        }
        assert_eq!(rows.0.len(), fired, "empty windows are not evaluated");
    }

    fn feed(b: &mut StatefulBoltAdapter, rows: &mut Rows, t: &Tuple<'_>) {
        b.execute(t, &mut BoltCollector::new(rows));
    }

    /// A window spanning a crash: the task's open windows are in the checkpoint, the spout
    /// replays what came after it, and every window fires with what it would have had.
    #[test]
    fn open_windows_survive_a_crash_through_the_checkpoint() {
        let src = StreamSource::intern("parse", "default", &Fields::new(["ts"]));
        let cp = StreamSource::intern(
            CHECKPOINT_COMPONENT,
            CHECKPOINT_STREAM,
            &Fields::new(CHECKPOINT_FIELDS),
        );
        let ev = |ts: i64| Tuple::from_parts(src, 1, &[Value::Int(ts)], &[], 0);
        let action = |a: Action, txid: u64| {
            Tuple::from_parts(cp, 9, &checkpoint_values(txid, a), &[(99, txid)], 0)
        };
        let all = [1, 4, 8, 11, 14, 19, 22, 27, 31];
        // Uninterrupted.
        let mut whole = Rows::default();
        let mut c = task(&MemoryProvider::default());
        feed(&mut c, &mut whole, &action(Action::InitState, 0));
        for ts in all {
            feed(&mut c, &mut whole, &ev(ts));
        }
        c.poll(&mut BoltCollector::new(&mut whole), true);
        assert_eq!(whole.0, [(10, 3), (20, 3), (30, 2), (40, 1)]);
        // A checkpoint after 11, a crash after 22; then a new task and the input after 11 again.
        let provider = MemoryProvider::default();
        let mut first = Rows::default();
        let mut a = task(&provider);
        feed(&mut a, &mut first, &action(Action::InitState, 0));
        for ts in &all[..4] {
            feed(&mut a, &mut first, &ev(*ts));
        }
        feed(&mut a, &mut first, &action(Action::Prepare, 1));
        feed(&mut a, &mut first, &action(Action::Commit, 1));
        for ts in &all[4..7] {
            feed(&mut a, &mut first, &ev(*ts));
        }
        drop(a);
        assert_eq!(first.0, [(10, 3), (20, 3)]);
        let mut second = Rows::default();
        let mut b = task(&provider);
        feed(&mut b, &mut second, &action(Action::InitState, 1));
        for ts in &all[4..] {
            feed(&mut b, &mut second, &ev(*ts));
        }
        b.poll(&mut BoltCollector::new(&mut second), true);
        // (10, 20] fires again, with the same tuples: emits downstream are at-least-once.
        assert_eq!(second.0, [(20, 3), (30, 2), (40, 1)]);
    }
}
