//! The component model Storm users know: spouts and bolts, their collectors, the output declarer
//! and the topology context.
//!
//! Components never see queues or sockets. They emit through a collector, which hands each emission
//! to an [`OutputSink`] that the runtime implements (routing by grouping, batching, acking).

use crate::batch::{Batch, BatchIter};
use crate::lane::{Lane, Pushed};
use crate::tuple::{DEFAULT_STREAM, MessageId, Tuple};
use crate::value::{Fields, Values};
use crate::wire::ValueRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// An error a component reports from `open`/`prepare` or from its constructor.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The component's constructorArgs or properties are wrong; the message says which and why.
    #[error("{0}")]
    Config(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// One stream a component declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDecl {
    pub name: String,
    pub fields: Fields,
    /// Direct streams only accept `emit_direct`, and only DIRECT groupings may subscribe to them.
    pub direct: bool,
}

/// Collects the streams a component declares, as Storm's `OutputFieldsDeclarer`.
#[derive(Debug, Default)]
pub struct OutputDeclarer {
    streams: Vec<StreamDecl>,
}

impl OutputDeclarer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the `default` stream.
    pub fn declare(&mut self, fields: Fields) {
        self.declare_stream(DEFAULT_STREAM, fields);
    }

    pub fn declare_stream(&mut self, name: &str, fields: Fields) {
        self.push(name, fields, false);
    }

    pub fn declare_direct_stream(&mut self, name: &str, fields: Fields) {
        self.push(name, fields, true);
    }

    fn push(&mut self, name: &str, fields: Fields, direct: bool) {
        self.streams.retain(|s| s.name != name);
        self.streams.push(StreamDecl {
            name: name.to_owned(),
            fields,
            direct,
        });
    }

    pub fn into_streams(self) -> Vec<StreamDecl> {
        self.streams
    }
}

/// The arguments a component is built from: Flux's `constructorArgs`, `properties` and
/// `configMethods`. A Flux `ref` to a top-level `components` entry arrives as that entry's JSON:
/// `{"className": ..., "constructorArgs": [...], "properties": {...}}`, with `"configMethods":
/// [[name, [args]], ...]` when the entry has them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentArgs {
    pub constructor_args: Vec<serde_json::Value>,
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Flux `configMethods`, in order: (method name, arguments). Only classes registered with
    /// [`crate::Registry::allow_config_methods`] may have them.
    #[serde(default)]
    pub config_methods: Vec<(String, Vec<serde_json::Value>)>,
}

impl ComponentArgs {
    /// A property as a string (numbers and booleans are turned into their text).
    pub fn property_str(&self, name: &str) -> Option<String> {
        match self.properties.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A required string property, with an error that says which property is missing.
    pub fn require_str(&self, name: &str) -> Result<String, ComponentError> {
        self.property_str(name).ok_or_else(|| {
            ComponentError::Config(format!(
                "missing property \"{name}\" (add `properties: [{{name: \"{name}\", value: ...}}]`)"
            ))
        })
    }

    /// As [`ComponentArgs::require_str`], refusing an empty value too (paths, commands).
    pub fn require_nonempty_str(&self, name: &str) -> Result<String, ComponentError> {
        let v = self.require_str(name)?;
        if v.is_empty() {
            return Err(ComponentError::Config(format!(
                "property \"{name}\" is empty"
            )));
        }
        Ok(v)
    }
}

/// What a task knows about itself and the topology, as Storm's `TopologyContext`.
#[derive(Clone, Debug)]
pub struct TopologyContext {
    pub topology_name: String,
    pub component_id: String,
    pub task_id: u32,
    /// Task ids of every component, system ones (`__acker`) included.
    pub component_tasks: Arc<BTreeMap<String, Vec<u32>>>,
    /// The topology's config: every key of the YAML's `config`, unknown ones included.
    pub config: Arc<serde_json::Map<String, serde_json::Value>>,
    /// Where shell components run and relative paths are resolved: `resources/` beside the YAML
    /// if it exists, else the YAML's folder.
    pub resources_dir: PathBuf,
    /// The (component, stream) pairs this component subscribes to.
    pub inputs: Vec<(String, String)>,
    /// Where stateful bolts keep their state (a topology with a stateful bolt).
    pub state: Option<Arc<dyn crate::state::StateProvider>>,
    /// Set once every data spout of the run has finished (local mode): the checkpoint spout then
    /// ends too.
    pub inputs_ended: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Set by the checkpoint spout when it ends (local mode): finished data spouts, which pass
    /// checkpoints on until then, end too.
    pub checkpoints_done: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl TopologyContext {
    /// Task ids of a component, in ascending order.
    pub fn tasks_of(&self, component: &str) -> &[u32] {
        self.component_tasks
            .get(component)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Whether the topology runs ackers (`topology.acker.executors`, by default one per
    /// worker, as Storm): a spout's tuples with message ids are then acked or failed.
    pub fn acking(&self) -> bool {
        let workers = self
            .config
            .get(crate::keys::WORKERS)
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        self.config
            .get(crate::keys::ACKER_EXECUTORS)
            .and_then(|v| v.as_u64())
            .unwrap_or(workers)
            > 0
    }

    /// Position of this task among its component's tasks (Storm's `getThisTaskIndex`).
    pub fn task_index(&self) -> usize {
        self.tasks_of(&self.component_id)
            .iter()
            .position(|t| *t == self.task_id)
            .unwrap_or(0)
    }

    /// Resolves a path to write to: relative paths are relative to the current directory, as
    /// for any command-line program (and for Storm's Java components).
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        PathBuf::from(p)
    }

    /// Resolves a path to read from: relative to the current directory when that file exists,
    /// else relative to the resources folder, so a topology's bundled data is found from anywhere.
    pub fn resolve_input_path(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() || path.exists() {
            return path;
        }
        let bundled = self.resources_dir.join(&path);
        if bundled.exists() { bundled } else { path }
    }
}

pub use gale_tuple::emit::EmitValues;

/// One emission as a collector hands it to the runtime.
#[derive(Debug)]
pub struct Emission<'a> {
    pub stream: &'a str,
    pub values: EmitValues<'a>,
    pub anchors: &'a [&'a Tuple<'a>],
    /// Spouts only: the id `ack`/`fail` will be called with.
    pub message_id: Option<MessageId>,
    /// For `emit_direct`: the one task to send to.
    pub direct_task: Option<u32>,
}

impl<'a> Emission<'a> {
    /// Borrowed values on the default stream, anchored to `anchors`: what
    /// [`OutputSink::emit_refs_anchored`] stands for.
    pub fn refs_anchored(anchors: &'a [&'a Tuple<'a>], values: &'a [ValueRef<'a>]) -> Self {
        Emission {
            stream: DEFAULT_STREAM,
            values: EmitValues::Refs(values),
            anchors,
            message_id: None,
            direct_task: None,
        }
    }
}

/// The runtime's side of a collector: routes emissions and records acks and fails.
pub trait OutputSink {
    /// Routes one emission. When `task_ids` is given, the runtime fills it with the receiving
    /// tasks (Storm's `emit` return value; multi-lang needs it).
    fn emit(&mut self, emission: Emission<'_>, task_ids: Option<&mut Vec<u32>>);

    /// `emit` of borrowed values on the default stream, anchored to one input: what most bolts
    /// do for each tuple, so a runtime may answer it without an [`Emission`] to look through.
    fn emit_refs_anchored(&mut self, anchor: &Tuple<'_>, values: &[ValueRef<'_>]) {
        self.emit(Emission::refs_anchored(&[anchor], values), None);
    }

    /// The birth stamp ([`crate::now_us`]) of the input being executed: what emits not anchored
    /// to a stamped tuple are stamped with. A runtime that executes tuples one by one knows it
    /// already; [`Bolt::execute_batch`]'s collector tells it before such an emit.
    fn set_input_born(&mut self, _born_us: u64) {}

    /// The runtime's [`Lane`]: a bolt's collector writes emits on the default stream into it
    /// when it is [`Lane::open`], and with acking on keeps the input's acking state in it.
    /// `None` (the default) sends everything through this sink.
    fn lane(&mut self) -> Option<&mut Lane> {
        None
    }

    /// With acking on: `input` is about to execute (the collector calls this when the lane's
    /// [`crate::lane::InputAcks::begin`] could not begin it).
    fn begin_input(&mut self, _input: &Tuple<'_>) {}

    /// The lane's batch for `dest` reached its size ([`crate::lane::Pushed::Full`]): send it.
    fn lane_full(&mut self, _dest: usize) {}

    fn ack(&mut self, input: &Tuple<'_>);
    fn fail(&mut self, input: &Tuple<'_>);
    /// Records an error against this component (shown in status and logs); the task keeps running.
    fn report_error(&mut self, message: &str);
}

/// What a spout emits through, as Storm's `SpoutOutputCollector`.
pub struct SpoutCollector<'a> {
    sink: &'a mut dyn OutputSink,
}

impl<'a> SpoutCollector<'a> {
    pub fn new(sink: &'a mut dyn OutputSink) -> Self {
        Self { sink }
    }

    /// Emits an unreliable tuple on the default stream.
    pub fn emit(&mut self, values: Values) {
        self.emit_stream(DEFAULT_STREAM, values, None);
    }

    /// Emits a reliable tuple: `ack`/`fail` will be called with `id` exactly once.
    pub fn emit_with_id(&mut self, values: Values, id: MessageId) {
        self.emit_stream(DEFAULT_STREAM, values, Some(id));
    }

    pub fn emit_stream(&mut self, stream: &str, values: Values, id: Option<MessageId>) {
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors: &[],
                message_id: id,
                direct_task: None,
            },
            None,
        );
    }

    /// Emits an unreliable tuple on the default stream from borrowed values.
    pub fn emit_refs(&mut self, values: &[ValueRef<'_>]) {
        self.sink.emit(
            Emission {
                stream: DEFAULT_STREAM,
                values: EmitValues::Refs(values),
                anchors: &[],
                message_id: None,
                direct_task: None,
            },
            None,
        );
    }

    /// Emits a reliable tuple on the default stream from borrowed values (written straight into
    /// the outgoing batch, nothing built per tuple).
    pub fn emit_refs_with_id(&mut self, values: &[ValueRef<'_>], id: MessageId) {
        self.sink.emit(
            Emission {
                stream: DEFAULT_STREAM,
                values: EmitValues::Refs(values),
                anchors: &[],
                message_id: Some(id),
                direct_task: None,
            },
            None,
        );
    }

    pub fn emit_direct(&mut self, task: u32, stream: &str, values: Values, id: Option<MessageId>) {
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors: &[],
                message_id: id,
                direct_task: Some(task),
            },
            None,
        );
    }

    /// Emits and returns the task ids the tuple was sent to.
    pub fn emit_returning_tasks(
        &mut self,
        stream: &str,
        values: Values,
        id: Option<MessageId>,
        direct_task: Option<u32>,
    ) -> Vec<u32> {
        let mut tasks = Vec::new();
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors: &[],
                message_id: id,
                direct_task,
            },
            Some(&mut tasks),
        );
        tasks
    }

    pub fn report_error(&mut self, message: &str) {
        self.sink.report_error(message);
    }
}

/// The tuples of a batch addressed to one task, in order: what [`Bolt::execute_batch`] executes.
#[derive(Clone)]
pub struct Inputs<'b> {
    tuples: BatchIter<'b>,
    task: u32,
}

impl<'b> Inputs<'b> {
    /// The tuples of `batch` addressed to `task`.
    pub fn new(batch: &'b Batch, task: u32) -> Self {
        Inputs {
            tuples: batch.iter(),
            task,
        }
    }
}

impl<'b> Iterator for Inputs<'b> {
    type Item = Tuple<'b>;

    #[inline(always)]
    fn next(&mut self) -> Option<Tuple<'b>> {
        loop {
            let (task, t) = self.tuples.next()?;
            if task == self.task {
                return Some(t);
            }
        }
    }
}

/// [`Bolt::execute_batch`]'s loop, compiled for each collector mode (its flags are constants
/// here).
#[inline(always)]
fn execute_inputs<B: Bolt + ?Sized>(
    bolt: &mut B,
    inputs: Inputs<'_>,
    mut out: BoltCollector<'_>,
) -> u64 {
    for input in inputs {
        let settled = out.begin_input(&input);
        bolt.execute(&input, &mut out);
        out.end_input(&input, settled);
    }
    out.unsettled
}

/// With acking on, writes `values` anchored to `anchor` into the lane when the anchor is the
/// input being executed and belongs to one tree (or to none), recording the new edge against
/// it; `None` when the emit is not the lane's to write.
#[inline(always)]
fn push_anchored(lane: &mut Lane, anchor: &Tuple, values: &[ValueRef<'_>]) -> Option<Pushed> {
    let acks = lane.acks.as_mut()?;
    if anchor.ack_count() == 0 {
        return Some(lane.push_routed(EmitValues::Refs(values), &[]));
    }
    let key = anchor.first_ack_id()?;
    if anchor.ack_count() != 1 || acks.current != Some(key) {
        return None;
    }
    let edge = acks.rng.next();
    let pushed = lane.push_routed(EmitValues::Refs(values), &[(key.0, edge)]);
    if !matches!(pushed, Pushed::Refused(_))
        && let Some(acks) = lane.acks.as_mut()
    {
        acks.current_xor ^= edge;
    }
    Some(pushed)
}

/// What a bolt emits through, as Storm's `OutputCollector`.
pub struct BoltCollector<'a> {
    sink: &'a mut dyn OutputSink,
    /// In [`Bolt::execute_batch`]: the current input's birth stamp while the sink has not been
    /// told it (it stamps unanchored emits with it). Told only before an emit that needs it, so
    /// an input whose emits are all anchored to it costs no call.
    unsynced_born: Option<u64>,
    /// Inputs acked or failed through this collector.
    settled: u64,
    /// Inputs of [`Bolt::execute_batch`] auto-acked without acking (only counted).
    unsettled: u64,
    /// The sink has no [`Lane`] for this collector.
    no_lane: bool,
    /// In [`Bolt::execute_batch`]: ack each input the bolt neither acked nor failed.
    auto_ack: bool,
    /// In [`Bolt::execute_batch`]: whether acking is on (`Some(true)`: the collector keeps the
    /// input's acking state in the sink's lane, [`crate::lane::InputAcks`]). `None` for a
    /// collector of one input, where the emit path asks the lane.
    batch_acking: Option<bool>,
}

impl<'a> BoltCollector<'a> {
    /// A collector for one input the runtime executes itself (it begins and acks the input).
    pub fn new(sink: &'a mut dyn OutputSink) -> Self {
        Self {
            sink,
            unsynced_born: None,
            settled: 0,
            unsettled: 0,
            no_lane: false,
            auto_ack: false,
            batch_acking: None,
        }
    }

    /// A collector for [`Bolt::execute_batch`]: it begins each input, and acks those the bolt
    /// neither acked nor failed when `auto_ack` (the bolt's [`Bolt::auto_ack`]). With `acking`,
    /// the sink's lane must hold [`crate::lane::InputAcks`].
    pub fn for_batch(sink: &'a mut dyn OutputSink, auto_ack: bool, acking: bool) -> Self {
        Self {
            auto_ack,
            batch_acking: Some(acking),
            ..Self::new(sink)
        }
    }

    /// In [`Bolt::execute_batch`] with acking on: the input's acking state is the collector's.
    #[inline(always)]
    fn inline_acks(&self) -> bool {
        self.batch_acking == Some(true)
    }

    /// Tells the sink the current input's birth stamp, if it has not been told.
    #[inline]
    fn sync_born(&mut self) {
        if let Some(born) = self.unsynced_born.take() {
            self.sink.set_input_born(born);
        }
    }

    /// In [`Bolt::execute_batch`]: `input` is about to execute. Returns the
    /// settled count to hand to [`BoltCollector::end_input`].
    #[inline(always)]
    fn begin_input(&mut self, input: &Tuple) -> u64 {
        self.unsynced_born = Some(input.born_us());
        if self.inline_acks() {
            let begun = match self.sink.lane() {
                Some(lane) => lane.acks.as_mut().is_some_and(|a| a.begin(input)),
                None => false,
            };
            if !begun {
                self.sink.begin_input(input);
            }
        }
        self.settled
    }

    /// In [`Bolt::execute_batch`]: `input`, begun when the settled count was
    /// `settled`, has executed.
    #[inline(always)]
    fn end_input(&mut self, input: &Tuple, settled: u64) {
        if self.settled == settled && self.auto_ack {
            if self.inline_acks() {
                self.ack_input(input);
            } else {
                // All an ack does without ackers: counted once per batch by the runtime.
                self.unsettled += 1;
            }
        }
    }

    /// Acks `input` in the lane when it is the input being executed, else through the sink.
    #[inline(always)]
    fn ack_input(&mut self, input: &Tuple) {
        if let Some(lane) = self.sink.lane()
            && let Some(acks) = lane.acks.as_mut()
            && acks.ack_current(input)
        {
            lane.acked += 1;
            return;
        }
        self.sink.ack(input);
    }

    /// Emits an unanchored tuple on the default stream.
    pub fn emit(&mut self, values: Values) {
        self.emit_stream(DEFAULT_STREAM, &[], values);
    }

    /// Emits a tuple anchored to `anchor`, so its failure replays the spout tuple behind `anchor`.
    pub fn emit_anchored(&mut self, anchor: &Tuple, values: Values) {
        self.emit_stream(DEFAULT_STREAM, &[anchor], values);
    }

    /// As [`BoltCollector::emit_anchored`], with values borrowed (say, words of the input's
    /// string): nothing is built per value, the runtime writes them straight into its batch.
    #[inline(always)]
    pub fn emit_refs_anchored(&mut self, anchor: &Tuple, values: &[ValueRef<'_>]) {
        // The tuple is stamped with its anchor's birth, or with the input's if the anchor has
        // none.
        let born = anchor.born_us();
        if !self.no_lane {
            match self.sink.lane() {
                // Open or not, a lane stays so for the life of its executor.
                Some(lane) if !lane.open => self.no_lane = true,
                Some(lane) => {
                    if born > 0 {
                        lane.born = born;
                    } else if let Some(b) = self.unsynced_born.take() {
                        lane.born = b;
                    }
                    // Two writes, each compiled for its case: acking off, and the common case
                    // with acking on (the anchor is the input being executed and belongs to one
                    // tree; the tuple is its one new edge). Anything else goes through the sink.
                    let acking = match self.batch_acking {
                        Some(acking) => acking,
                        None => lane.acks.is_some(),
                    };
                    let pushed = if !acking {
                        lane.push_routed(EmitValues::Refs(values), &[])
                    } else {
                        match push_anchored(lane, anchor, values) {
                            Some(p) => p,
                            None => return self.emit_refs_by_sink(anchor, values),
                        }
                    };
                    match pushed {
                        Pushed::Written => lane.emitted += 1,
                        Pushed::Full(d) => {
                            lane.emitted += 1;
                            self.sink.lane_full(d);
                        }
                        // The sink's general path reports why.
                        Pushed::Refused(_) => return self.emit_refs_by_sink(anchor, values),
                    }
                    return;
                }
                None => self.no_lane = true,
            }
        }
        self.emit_refs_by_sink(anchor, values);
    }

    /// [`BoltCollector::emit_refs_anchored`] through the sink.
    fn emit_refs_by_sink(&mut self, anchor: &Tuple, values: &[ValueRef<'_>]) {
        if anchor.born_us() == 0 {
            self.sync_born();
        }
        self.sink.emit_refs_anchored(anchor, values);
    }

    /// Emits borrowed values on `stream`, anchored to every tuple in `anchors`.
    pub fn emit_refs(&mut self, stream: &str, anchors: &[&Tuple], values: &[ValueRef<'_>]) {
        self.sync_born();
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Refs(values),
                anchors,
                message_id: None,
                direct_task: None,
            },
            None,
        );
    }

    /// Emits on `stream`, anchored to every tuple in `anchors` (multi-anchoring).
    pub fn emit_stream(&mut self, stream: &str, anchors: &[&Tuple], values: Values) {
        self.sync_born();
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors,
                message_id: None,
                direct_task: None,
            },
            None,
        );
    }

    pub fn emit_direct(&mut self, task: u32, stream: &str, anchors: &[&Tuple], values: Values) {
        self.sync_born();
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors,
                message_id: None,
                direct_task: Some(task),
            },
            None,
        );
    }

    /// Emits and returns the task ids the tuple was sent to.
    pub fn emit_returning_tasks(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
        direct_task: Option<u32>,
    ) -> Vec<u32> {
        let mut tasks = Vec::new();
        self.sync_born();
        self.sink.emit(
            Emission {
                stream,
                values: EmitValues::Owned(&values),
                anchors,
                message_id: None,
                direct_task,
            },
            Some(&mut tasks),
        );
        tasks
    }

    pub fn ack(&mut self, input: &Tuple) {
        self.settled += 1;
        if self.inline_acks() {
            self.ack_input(input);
        } else {
            self.sink.ack(input);
        }
    }

    pub fn fail(&mut self, input: &Tuple) {
        self.settled += 1;
        self.sink.fail(input);
    }

    pub fn report_error(&mut self, message: &str) {
        self.sink.report_error(message);
    }

    /// The runtime's sink under this collector (for the runtime's own bolt wrappers).
    #[doc(hidden)]
    pub fn sink_mut(&mut self) -> &mut dyn OutputSink {
        self.sink
    }

    /// Inputs acked or failed through this collector.
    #[doc(hidden)]
    pub fn settled(&self) -> u64 {
        self.settled
    }
}

/// A source of tuples, with Storm's `ISpout` lifecycle.
pub trait Spout: Send {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);

    /// Called once in the executor thread before the first `next_tuple`.
    fn open(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Emits zero or more tuples. It must not block for long: the executor calls it in a loop and
    /// backs off (spin, yield, sleep) while it emits nothing.
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>);

    /// The tuple tree of `id` was fully processed.
    fn ack(&mut self, _id: &MessageId) {}

    /// The tuple tree of `id` failed or timed out; a reliable spout replays it.
    fn fail(&mut self, _id: &MessageId) {}

    fn activate(&mut self) {}
    fn deactivate(&mut self) {}
    fn close(&mut self) {}

    /// Gauges the spout reports (Storm's registered metrics, such as a Kafka spout's lag), as
    /// (name, value); read about once a second, shown per component in `gale status`, the REST
    /// API and `/metrics` (summed over the component's tasks).
    fn gauges(&self) -> Vec<(String, i64)> {
        Vec::new()
    }

    /// Gale's exactly-once state (docs/state.md): where the spout is in its input (what it has
    /// emitted), recorded with each checkpoint of a topology with stateful bolts. `None` (the
    /// default): the spout cannot rewind; its tuples are replayed by message id, at least once.
    fn position(&self) -> Option<serde_json::Value> {
        None
    }

    /// Rewinds to a position [`Spout::position`] returned (`None`: the start of the input),
    /// forgetting the tuples in flight: what follows the position is emitted again.
    fn seek(&mut self, _position: Option<&serde_json::Value>) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Gale's addition for finite sources: true once the spout will emit nothing more (replays
    /// included). Local mode ends when every spout is finished and every tuple is processed.
    fn is_finished(&self) -> bool {
        false
    }
}

/// A processing step, with Storm's `IBolt` lifecycle.
pub trait Bolt: Send {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);

    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>);

    /// Executes the inputs of one batch in order: [`Bolt::execute`] for each, through a
    /// collector on `sink` that begins each input and, when `auto_ack`, acks the inputs the bolt
    /// neither acked nor failed (with `acking`, keeping their acking state in the sink's lane).
    /// Returns how many inputs were acked only by being counted (acking off), for the runtime
    /// to count.
    ///
    /// The runtime calls this for an executor of one task, once per batch. Being a provided
    /// method it is compiled for each bolt type, so `execute` is a direct call the compiler may
    /// inline rather than a call through the vtable per tuple (about 20 instructions a tuple;
    /// docs/performance.md), and the loop is compiled twice, for acking off and on, each
    /// without the other's checks. Leave it as it is.
    #[doc(hidden)]
    #[inline]
    fn execute_batch(
        &mut self,
        inputs: Inputs<'_>,
        sink: &mut dyn OutputSink,
        auto_ack: bool,
        acking: bool,
    ) -> u64 {
        if acking {
            execute_inputs(self, inputs, BoltCollector::for_batch(sink, auto_ack, true))
        } else {
            execute_inputs(
                self,
                inputs,
                BoltCollector::for_batch(sink, auto_ack, false),
            )
        }
    }

    /// Called once when the topology ends in local mode (Storm calls it only in local mode too).
    fn cleanup(&mut self) {}

    /// What the runtime calls at the end: `cleanup`, then whether the bolt's end work was done.
    /// A sink whose output could not be written returns the error: the run then fails, naming
    /// the component and task (`gale local` exits non-zero), instead of losing its results
    /// silently. The default runs `cleanup` and says nothing failed.
    fn end(&mut self) -> Result<(), ComponentError> {
        self.cleanup();
        Ok(())
    }

    /// When true (the default, like Storm's `BaseBasicBolt`), an input the bolt neither acked nor
    /// failed is acked after `execute` returns. Bolts that ack later (batching, joins) return false.
    fn auto_ack(&self) -> bool {
        true
    }

    /// Gale's addition for bolts that hand their input to something asynchronous (a multi-lang
    /// subprocess): when true, the executor calls [`Bolt::poll`] after each batch and about
    /// every millisecond while its input is empty.
    fn wants_poll(&self) -> bool {
        false
    }

    /// Emits, acks and fails what arrived asynchronously (anchoring to inputs the bolt kept).
    /// With `end` true the input has ended: finish everything in flight before returning.
    fn poll(&mut self, _out: &mut BoltCollector<'_>, _end: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::StreamSource;
    use crate::values;

    /// What a sink was told, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl OutputSink for Log {
        fn emit(&mut self, e: Emission<'_>, _task_ids: Option<&mut Vec<u32>>) {
            self.0
                .push(format!("emit {}", e.values.to_strings().join(" ")));
        }
        fn emit_refs_anchored(&mut self, anchor: &Tuple<'_>, _values: &[ValueRef<'_>]) {
            self.0.push(format!("anchored born {}", anchor.born_us()));
        }
        fn set_input_born(&mut self, born_us: u64) {
            self.0.push(format!("born {born_us}"));
        }
        fn ack(&mut self, t: &Tuple<'_>) {
            self.0.push(format!("ack {}", t.get_int(0).unwrap_or(-1)));
        }
        fn fail(&mut self, t: &Tuple<'_>) {
            self.0.push(format!("fail {}", t.get_int(0).unwrap_or(-1)));
        }
        fn report_error(&mut self, _message: &str) {}
    }

    /// Acks its even inputs, fails multiples of 3 (6 both), emits unanchored for multiples of
    /// 4 and anchored for the rest.
    struct Picky;

    impl Bolt for Picky {
        fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
        fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
            let n = t.get_int(0).unwrap_or(-1);
            if n % 2 == 0 {
                out.ack(t);
            }
            if n % 3 == 0 {
                out.fail(t);
            }
            if n % 4 == 0 {
                out.emit(values![n]);
            } else {
                out.emit_refs_anchored(t, &[ValueRef::Int(n)]);
            }
        }
    }

    #[test]
    fn execute_batch_runs_its_tasks_inputs_and_counts_the_unsettled() {
        let src = StreamSource::intern("s", DEFAULT_STREAM, &Fields::new(["n"]));
        let mut batch = Batch::with_capacity(16);
        for n in 1..=8i64 {
            // Task 9 gets 1..=8, task 5 their negatives; spout tuples 5 and 6 have no birth stamp.
            let born = if n == 5 || n == 6 { 0 } else { 100 + n as u64 };
            batch.push(9, src, 1, born, &[], &values![n]).unwrap();
            batch.push(5, src, 1, born, &[], &values![-n]).unwrap();
        }
        let mut log = Log::default();
        let unsettled = Picky.execute_batch(Inputs::new(&batch, 9), &mut log, true, false);
        // Neither acked nor failed: 1, 5 and 7.
        assert_eq!(unsettled, 3);
        let expected = [
            "anchored born 101",
            "ack 2",
            "anchored born 102",
            "fail 3",
            "anchored born 103",
            "ack 4",
            // Unanchored: stamped with the input's birth, told just before.
            "born 104",
            "emit 4",
            // No stamp on the anchor: the input's (0) is told, not 104's left over.
            "born 0",
            "anchored born 0",
            "ack 6",
            "fail 6",
            "born 0",
            "anchored born 0",
            "anchored born 107",
            "ack 8",
            "born 108",
            "emit 8",
        ];
        assert_eq!(log.0, expected);
    }
}
