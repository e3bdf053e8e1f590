//! `KafkaSpout`: Storm's storm-kafka-client spout (docs/kafka.md).
//!
//! Each task takes its share of the topics' partitions (sorted by topic and partition, dealt round
//! robin over the tasks: manual assignment, no group membership), re-checked every
//! `partition.refresh.period.ms`. A fetcher thread per task reads ahead into a bounded channel,
//! so `next_tuple` never waits on the network; the task's own connection looks up offsets and
//! commits them.
//!
//! A record's message id packs (assignment epoch, partition slot, offset) into a `u64`. Emitted
//! records stay in memory until acked (a failed one is emitted again from there after its
//! backoff); only offsets below every unacked one are committed.

use crate::client::{Committed, EARLIEST, Fetched, KafkaClient, KafkaError, LATEST};
use crate::config::{FirstPoll, Guarantee, SpoutConfig, Translator};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use topology_api::component::{
    ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector, TopologyContext,
};
use topology_api::tuple::MessageId;
use topology_api::value::Fields;
use topology_api::wire::ValueRef;

/// Message id layout: epoch (8 bits), slot (12 bits), offset (44 bits).
const OFFSET_BITS: u32 = 44;
const SLOT_BITS: u32 = 12;
const MAX_SLOTS: usize = 1 << SLOT_BITS;

fn pack(epoch: u8, slot: usize, offset: i64) -> u64 {
    ((epoch as u64) << (OFFSET_BITS + SLOT_BITS))
        | ((slot as u64) << OFFSET_BITS)
        | (offset as u64 & ((1 << OFFSET_BITS) - 1))
}

fn unpack(id: u64) -> (u8, usize, i64) {
    (
        (id >> (OFFSET_BITS + SLOT_BITS)) as u8,
        ((id >> OFFSET_BITS) & ((1 << SLOT_BITS) - 1)) as usize,
        (id & ((1 << OFFSET_BITS) - 1)) as i64,
    )
}

/// The partitions task `index` of `tasks` reads: every `tasks`-th of the sorted list.
pub fn assign(all: &[(String, i32)], index: usize, tasks: usize) -> Vec<(String, i32)> {
    let mut sorted = all.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % tasks.max(1) == index)
        .map(|(_, tp)| tp)
        .collect()
}

/// Where the first poll of a partition starts, as Storm's `FirstPollOffsetStrategy`: the
/// committed offset when the strategy is UNCOMMITTED_*, or when it was committed by this
/// topology; else the earliest or latest offset.
pub fn first_offset(
    strategy: FirstPoll,
    committed: Option<&Committed>,
    topology: &str,
    earliest: i64,
    latest: i64,
) -> i64 {
    let ours = committed.filter(|c| committed_by(&c.metadata) == Some(topology));
    match strategy {
        FirstPoll::UncommittedEarliest => committed.map_or(earliest, |c| c.offset),
        FirstPoll::UncommittedLatest => committed.map_or(latest, |c| c.offset),
        FirstPoll::Earliest => ours.map_or(earliest, |c| c.offset),
        FirstPoll::Latest => ours.map_or(latest, |c| c.offset),
    }
}

/// The topology named in commit metadata (`{"topologyId": ...}`), if any.
fn committed_by(metadata: &str) -> Option<&str> {
    let rest = metadata.split("\"topologyId\":\"").nth(1)?;
    rest.split('"').next()
}

/// Control messages to the fetcher thread.
enum Ctl {
    /// Read these (slot, topic, partition, offset) from now on; chunks carry `epoch`.
    Assign {
        epoch: u8,
        parts: Vec<(usize, String, i32, i64)>,
    },
    Pause(usize),
    Resume(usize),
}

/// Records of one partition, from the fetcher.
struct Chunk {
    epoch: u8,
    slot: usize,
    records: Vec<Fetched>,
    high_watermark: i64,
}

fn fetcher(
    mut client: KafkaClient,
    ctl: Receiver<Ctl>,
    out: Sender<Result<Chunk, String>>,
    poll: Duration,
    max_bytes: i32,
    partition_bytes: i32,
) {
    let mut epoch = 0u8;
    // slot -> (topic, partition, next offset)
    let mut parts: BTreeMap<usize, (String, i32, i64)> = BTreeMap::new();
    let mut paused: std::collections::BTreeSet<usize> = Default::default();
    let mut backoff = Duration::ZERO;
    loop {
        // Control first: block briefly when there is nothing to read.
        let idle = parts.keys().all(|s| paused.contains(s));
        let first = if idle || !backoff.is_zero() {
            match ctl.recv_timeout(if idle { poll } else { backoff }) {
                Ok(m) => Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            None
        };
        for m in first
            .into_iter()
            .chain(std::iter::from_fn(|| ctl.try_recv().ok()))
        {
            match m {
                Ctl::Assign { epoch: e, parts: p } => {
                    epoch = e;
                    paused.clear();
                    parts = p
                        .into_iter()
                        .map(|(slot, t, pa, off)| (slot, (t, pa, off)))
                        .collect();
                }
                Ctl::Pause(s) => {
                    paused.insert(s);
                }
                Ctl::Resume(s) => {
                    paused.remove(&s);
                }
            }
        }
        if matches!(ctl.try_recv(), Err(TryRecvError::Disconnected)) {
            return;
        }
        let wanted: Vec<(String, i32, i64)> = parts
            .iter()
            .filter(|(s, _)| !paused.contains(s))
            .map(|(_, (t, p, o))| (t.clone(), *p, *o))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        match client.fetch(&wanted, poll, max_bytes, partition_bytes) {
            Ok(mut got) => {
                backoff = Duration::ZERO;
                for (slot, (t, p, off)) in parts.iter_mut() {
                    let Some(f) = got.remove(&(t.clone(), *p)) else {
                        continue;
                    };
                    *off = f.next_offset;
                    let chunk = Chunk {
                        epoch,
                        slot: *slot,
                        records: f.records,
                        high_watermark: f.high_watermark,
                    };
                    if out.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                if out.try_send(Err(e.to_string())).is_err() && out.is_empty() {
                    return;
                }
            }
        }
    }
}

/// One assigned partition.
#[derive(Debug)]
struct Part {
    topic: String,
    partition: i32,
    /// Still assigned to this task.
    active: bool,
    /// The next offset to emit: the spout's position in the partition.
    next: i64,
    /// Fetched, not yet emitted.
    ready: VecDeque<Fetched>,
    /// Emitted, not yet acked (at-least-once).
    inflight: BTreeMap<i64, Fetched>,
    /// Last offset committed to Kafka (the next to read).
    committed: i64,
    high_watermark: i64,
    paused: bool,
    /// The last fetch of this partition came back empty.
    caught_up: bool,
}

impl Part {
    /// The offset below which everything is done: the first unacked one, or the position.
    fn committable(&self) -> i64 {
        self.inflight.keys().next().copied().unwrap_or(self.next)
    }
}

pub struct KafkaSpout {
    cfg: SpoutConfig,
    topology: String,
    component: String,
    task_id: u32,
    task_index: usize,
    tasks: usize,
    group: String,
    client: Option<KafkaClient>,
    ctl: Option<Sender<Ctl>>,
    chunks: Option<Receiver<Result<Chunk, String>>>,
    epoch: u8,
    parts: Vec<Part>,
    slots: HashMap<(String, i32), usize>,
    /// Round-robin cursor over the slots.
    cursor: usize,
    /// Failed tuples due again: (when, slot, offset).
    retries: VecDeque<(Instant, usize, i64)>,
    retry_counts: HashMap<(usize, i64), u32>,
    /// Acking on and AT_LEAST_ONCE: tuples carry ids and offsets wait for acks.
    tracked: bool,
    assigned: bool,
    /// Next attempt at (re)assignment.
    assign_at: Instant,
    last_commit: Instant,
    last_error: Option<(String, Instant)>,
    /// Positions asked for by `seek` before the assignment was made.
    wanted_positions: Option<BTreeMap<String, i64>>,
}

impl KafkaSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let cfg = SpoutConfig::from_args(args)?;
        Ok(KafkaSpout {
            cfg,
            topology: String::new(),
            component: String::new(),
            task_id: 0,
            task_index: 0,
            tasks: 1,
            group: String::new(),
            client: None,
            ctl: None,
            chunks: None,
            epoch: 0,
            parts: Vec::new(),
            slots: HashMap::new(),
            cursor: 0,
            retries: VecDeque::new(),
            retry_counts: HashMap::new(),
            tracked: false,
            assigned: false,
            assign_at: Instant::now(),
            last_commit: Instant::now(),
            last_error: None,
            wanted_positions: None,
        })
    }

    fn client(&mut self) -> &mut KafkaClient {
        let id = format!("gale-{}-{}-{}", self.topology, self.component, self.task_id);
        let cfg = &self.cfg;
        self.client.get_or_insert_with(|| {
            KafkaClient::new(cfg.bootstrap.clone(), &id, Duration::from_secs(10))
        })
    }

    fn metadata(&self) -> String {
        serde_json::json!({
            "topologyId": self.topology,
            "taskId": self.task_id,
            "threadName": format!("{}-{}", self.component, self.task_index),
        })
        .to_string()
    }

    /// Reports an error at most every 5 s (a broker down is not one error per call).
    fn error(&mut self, out: &mut SpoutCollector<'_>, message: String) {
        let now = Instant::now();
        if self
            .last_error
            .as_ref()
            .is_some_and(|(m, t)| *m == message && now.duration_since(*t) < Duration::from_secs(5))
        {
            return;
        }
        tracing::warn!(component = %self.component, task = self.task_id, "{message}");
        out.report_error(&message);
        self.last_error = Some((message, now));
    }

    /// Looks up this task's partitions and where to start in each new one; tells the fetcher.
    fn refresh_assignment(&mut self) -> Result<(), KafkaError> {
        let topics = self.cfg.topics.clone();
        let mut all = Vec::new();
        for t in &topics {
            match self.client().partitions(t) {
                Ok(ps) => all.extend(ps.into_iter().map(|p| (t.clone(), p))),
                // A topic not created yet: the others are read; it is looked up again.
                Err(KafkaError::UnknownTopic(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mine = assign(&all, self.task_index, self.tasks);
        let new: Vec<(String, i32)> = mine
            .iter()
            .filter(|tp| self.slots.get(*tp).is_none_or(|&s| !self.parts[s].active))
            .cloned()
            .collect();
        let gone: Vec<usize> = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.active && !mine.contains(&(p.topic.clone(), p.partition)))
            .map(|(s, _)| s)
            .collect();
        if new.is_empty() && gone.is_empty() && self.assigned {
            return Ok(());
        }
        let starts = if new.is_empty() {
            BTreeMap::new()
        } else {
            self.start_offsets(&new)?
        };
        for s in gone {
            let p = &mut self.parts[s];
            p.active = false;
            p.ready.clear();
            p.inflight.clear();
            tracing::info!(component = %self.component, task = self.task_id, "No longer reading {}/{}", p.topic, p.partition);
        }
        for tp in new {
            let start = starts.get(&tp).copied().unwrap_or(0);
            let slot = match self.slots.get(&tp) {
                Some(&s) => s,
                None => {
                    if self.parts.len() >= MAX_SLOTS {
                        tracing::warn!("KafkaSpout task reads at most {MAX_SLOTS} partitions");
                        continue;
                    }
                    self.parts.push(Part {
                        topic: tp.0.clone(),
                        partition: tp.1,
                        active: false,
                        next: 0,
                        ready: VecDeque::new(),
                        inflight: BTreeMap::new(),
                        committed: -1,
                        high_watermark: -1,
                        paused: false,
                        caught_up: false,
                    });
                    self.slots.insert(tp.clone(), self.parts.len() - 1);
                    self.parts.len() - 1
                }
            };
            let p = &mut self.parts[slot];
            p.active = true;
            p.caught_up = false;
            p.next = start;
            p.committed = start;
            tracing::info!(
                component = %self.component,
                task = self.task_id,
                "Reading {}/{} from offset {start}",
                p.topic,
                p.partition
            );
        }
        self.assigned = true;
        self.send_assignment();
        Ok(())
    }

    /// Where each new partition starts: a position `seek` asked for, else the first-poll
    /// strategy.
    fn start_offsets(
        &mut self,
        parts: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), i64>, KafkaError> {
        let group = self.group.clone();
        let committed = self.client().committed_offsets(&group, parts)?;
        let earliest = self.client().list_offsets(parts, EARLIEST)?;
        let needs_latest = matches!(
            self.cfg.first_poll,
            FirstPoll::Latest | FirstPoll::UncommittedLatest
        );
        let latest = if needs_latest {
            self.client().list_offsets(parts, LATEST)?
        } else {
            BTreeMap::new()
        };
        let mut out = BTreeMap::new();
        for tp in parts {
            let e = earliest.get(tp).copied().unwrap_or(0);
            let l = latest.get(tp).copied().unwrap_or(e);
            let mut start =
                first_offset(self.cfg.first_poll, committed.get(tp), &self.topology, e, l);
            if let Some(pos) = self
                .wanted_positions
                .as_ref()
                .and_then(|w| w.get(&format!("{}/{}", tp.0, tp.1)))
            {
                start = *pos;
            }
            out.insert(tp.clone(), start.max(e));
        }
        Ok(out)
    }

    fn send_assignment(&mut self) {
        let parts = self
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.active)
            .map(|(s, p)| (s, p.topic.clone(), p.partition, p.next))
            .collect();
        if let Some(ctl) = &self.ctl {
            let _ = ctl.send(Ctl::Assign {
                epoch: self.epoch,
                parts,
            });
        }
        for p in &mut self.parts {
            p.paused = false;
        }
    }

    /// Commits what is done (AT_LEAST_ONCE: below every unacked offset; NO_GUARANTEE: what was
    /// emitted).
    fn commit(&mut self) -> Result<(), KafkaError> {
        self.last_commit = Instant::now();
        let offsets: Vec<(String, i32, i64)> = self
            .parts
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| {
                let c = if self.tracked {
                    p.committable()
                } else {
                    p.next
                };
                (c > p.committed).then(|| (p.topic.clone(), p.partition, c))
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (group, meta) = (self.group.clone(), self.metadata());
        self.client().commit_offsets(&group, &offsets, &meta)?;
        for (t, p, c) in offsets {
            if let Some(&s) = self.slots.get(&(t, p)) {
                self.parts[s].committed = c;
            }
        }
        Ok(())
    }

    fn emit(&self, out: &mut SpoutCollector<'_>, slot: usize, r: &Fetched) {
        let p = &self.parts[slot];
        let text = |b: &Option<bytes::Bytes>| -> Option<String> {
            b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let (key_s, value_s) = (text(&r.key), text(&r.value));
        fn bytes_or_text<'a>(
            raw: &'a Option<bytes::Bytes>,
            s: &'a Option<String>,
            as_bytes: bool,
        ) -> ValueRef<'a> {
            match (raw, s, as_bytes) {
                (None, _, _) => ValueRef::Null,
                (Some(b), _, true) => ValueRef::Bytes(b),
                (_, Some(s), false) => ValueRef::Str(s),
                (Some(b), None, false) => ValueRef::Bytes(b),
            }
        }
        let key = bytes_or_text(&r.key, &key_s, self.cfg.key_bytes);
        let value = bytes_or_text(&r.value, &value_s, self.cfg.value_bytes);
        let id = self
            .tracked
            .then(|| MessageId::Int(pack(self.epoch, slot, r.offset)));
        let partition = ValueRef::Int(p.partition as i64);
        let offset = ValueRef::Int(r.offset);
        let values: Vec<ValueRef<'_>> = match self.cfg.translator {
            Translator::Default => vec![ValueRef::Str(&p.topic), partition, offset, key, value],
            Translator::ValueOnly => vec![value],
        };
        match id {
            Some(id) => out.emit_refs_with_id(&values, id),
            None => out.emit_refs(&values),
        }
    }

    /// Takes what the fetcher read.
    fn drain(&mut self, out: &mut SpoutCollector<'_>) {
        let Some(rx) = self.chunks.clone() else {
            return;
        };
        loop {
            match rx.try_recv() {
                Ok(Ok(c)) => {
                    if c.epoch != self.epoch {
                        continue;
                    }
                    let p = &mut self.parts[c.slot];
                    if !p.active {
                        continue;
                    }
                    p.high_watermark = p.high_watermark.max(c.high_watermark);
                    p.caught_up = c.records.is_empty();
                    let from = p.ready.back().map_or(p.next, |r| r.offset + 1);
                    p.ready
                        .extend(c.records.into_iter().filter(|r| r.offset >= from));
                    if self.cfg.guarantee == Guarantee::AtMostOnce
                        && let Some(last) = self.parts[c.slot].ready.back()
                    {
                        // Committed before anything of it is emitted.
                        let p = &self.parts[c.slot];
                        let offsets = vec![(p.topic.clone(), p.partition, last.offset + 1)];
                        let (group, meta) = (self.group.clone(), self.metadata());
                        match self.client().commit_offsets(&group, &offsets, &meta) {
                            Ok(()) => self.parts[c.slot].committed = offsets[0].2,
                            Err(e) => {
                                // Not committed: not emitted (at most once).
                                self.parts[c.slot].ready.clear();
                                self.error(out, format!("Kafka commit failed: {e}"));
                                self.epoch = self.epoch.wrapping_add(1);
                                self.send_assignment();
                                return;
                            }
                        }
                    }
                    // One chunk at a time keeps memory bounded by the channel.
                    return;
                }
                Ok(Err(e)) => {
                    self.error(out, format!("Kafka fetch failed: {e}"));
                    // Leaders may have moved: look again.
                    self.assign_at = Instant::now();
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

impl Spout for KafkaSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        match self.cfg.translator {
            Translator::Default => d.declare(Fields::new([
                "topic",
                "partition",
                "offset",
                "key",
                "value",
            ])),
            Translator::ValueOnly => d.declare(Fields::new(["value"])),
        }
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.topology = ctx.topology_name.clone();
        self.component = ctx.component_id.clone();
        self.task_id = ctx.task_id;
        self.task_index = ctx.task_index();
        self.tasks = ctx.tasks_of(&ctx.component_id).len().max(1);
        self.group = self
            .cfg
            .group_id
            .clone()
            .unwrap_or_else(|| format!("gale-{}-{}", self.topology, self.component));
        self.tracked = ctx.acking() && self.cfg.guarantee == Guarantee::AtLeastOnce;
        if !self.cfg.other_props.is_empty() {
            tracing::debug!(props = ?self.cfg.other_props, "Kafka consumer properties Gale does not use");
        }
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        // A few partitions' worth read ahead (each chunk at most max.partition.fetch.bytes).
        let (tx, rx) = crossbeam_channel::bounded(4);
        let client = KafkaClient::new(
            self.cfg.bootstrap.clone(),
            &format!(
                "gale-{}-{}-{}-fetch",
                self.topology, self.component, self.task_id
            ),
            Duration::from_secs(10),
        );
        let (poll, max_bytes, partition_bytes) = (
            self.cfg.poll_timeout,
            self.cfg.fetch_max_bytes,
            self.cfg.partition_fetch_bytes,
        );
        std::thread::Builder::new()
            .name(format!("kafka-fetch-{}", self.task_id))
            .spawn(move || fetcher(client, ctl_rx, tx, poll, max_bytes, partition_bytes))
            .map_err(|e| ComponentError::Config(format!("cannot start the Kafka fetcher: {e}")))?;
        self.ctl = Some(ctl_tx);
        self.chunks = Some(rx);
        self.last_commit = Instant::now();
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        let now = Instant::now();
        if now >= self.assign_at {
            self.assign_at = now + self.cfg.partition_refresh_period;
            if let Err(e) = self.refresh_assignment() {
                self.error(
                    out,
                    format!("Kafka partitions of {:?}: {e}", self.cfg.topics),
                );
                self.assign_at = now + Duration::from_millis(500);
            }
        }
        if !self.assigned {
            return;
        }
        if self.cfg.guarantee != Guarantee::AtMostOnce
            && now.duration_since(self.last_commit) >= self.cfg.offset_commit_period
            && let Err(e) = self.commit()
        {
            self.error(out, format!("Kafka offset commit failed: {e}"));
        }
        // A failed tuple whose backoff is over.
        if let Some(&(due, slot, offset)) = self.retries.front()
            && due <= now
        {
            self.retries.pop_front();
            if let Some(r) = self.parts[slot].inflight.get(&offset).cloned() {
                self.emit(out, slot, &r);
            }
            return;
        }
        if self.parts.iter().all(|p| p.ready.is_empty()) {
            self.drain(out);
        }
        let n = self.parts.len();
        for i in 0..n {
            let slot = (self.cursor + i) % n;
            let max = self.cfg.max_uncommitted_offsets as i64;
            let p = &mut self.parts[slot];
            if !p.active || p.ready.is_empty() {
                continue;
            }
            if self.tracked && p.next - p.committed >= max {
                if !p.paused {
                    p.paused = true;
                    if let Some(ctl) = &self.ctl {
                        let _ = ctl.send(Ctl::Pause(slot));
                    }
                }
                continue;
            }
            let r = p.ready.pop_front().expect("not empty");
            p.next = r.offset + 1;
            if self.tracked {
                p.inflight.insert(r.offset, r.clone());
            }
            self.cursor = slot + 1;
            self.emit(out, slot, &r);
            return;
        }
        // Paused partitions whose commits caught up read on.
        if self.tracked {
            let max = self.cfg.max_uncommitted_offsets as i64;
            let ctl = self.ctl.clone();
            for (slot, p) in self.parts.iter_mut().enumerate() {
                if p.paused && p.next - p.committed < max {
                    p.paused = false;
                    if let Some(ctl) = &ctl {
                        let _ = ctl.send(Ctl::Resume(slot));
                    }
                }
            }
            // Commits are what unpause: with every partition held, commit now.
            if self.parts.iter().any(|p| p.paused)
                && now.duration_since(self.last_commit) >= Duration::from_millis(200)
                && let Err(e) = self.commit()
            {
                self.error(out, format!("Kafka offset commit failed: {e}"));
            }
        }
    }

    fn ack(&mut self, id: &MessageId) {
        let MessageId::Int(id) = id else { return };
        let (epoch, slot, offset) = unpack(*id);
        if epoch != self.epoch {
            return;
        }
        if let Some(p) = self.parts.get_mut(slot) {
            p.inflight.remove(&offset);
            self.retry_counts.remove(&(slot, offset));
        }
    }

    fn fail(&mut self, id: &MessageId) {
        let MessageId::Int(id) = id else { return };
        let (epoch, slot, offset) = unpack(*id);
        if epoch != self.epoch
            || !self
                .parts
                .get(slot)
                .is_some_and(|p| p.inflight.contains_key(&offset))
        {
            return;
        }
        let n = self.retry_counts.entry((slot, offset)).or_insert(0);
        *n += 1;
        if self.cfg.retry.max_retries.is_some_and(|m| *n > m) {
            // Given up, as Storm: counted as done so the partition's commits go on.
            tracing::warn!(component = %self.component, "Giving up on offset {offset} after {n} retries");
            self.retry_counts.remove(&(slot, offset));
            self.parts[slot].inflight.remove(&offset);
            return;
        }
        let due = Instant::now() + self.cfg.retry.delay(*n);
        // Kept in due order (delays grow, so mostly appended).
        let at = self.retries.partition_point(|(d, _, _)| *d <= due);
        self.retries.insert(at, (due, slot, offset));
    }

    fn deactivate(&mut self) {
        if let Err(e) = self.commit() {
            tracing::warn!(component = %self.component, "Kafka offset commit failed: {e}");
        }
    }

    fn close(&mut self) {
        self.deactivate();
    }

    /// Storm's `kafkaOffset` metrics, per partition this task reads and per topic:
    /// `kafkaOffset/<topic>/partition_<p>/{spoutLag,latestTimeOffset,latestEmittedOffset,
    /// latestCompletedOffset}` and `kafkaOffset/<topic>/totalSpoutLag`. The log end is the high
    /// watermark of the last fetch (tansu 0.6.0 reports it low: docs/kafka.md).
    fn gauges(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
        for p in self.parts.iter().filter(|p| p.active) {
            let done = if self.tracked {
                p.committable()
            } else {
                p.next
            };
            let lag = if p.high_watermark >= 0 {
                (p.high_watermark - done).max(0)
            } else {
                0
            };
            let pre = format!("kafkaOffset/{}/partition_{}", p.topic, p.partition);
            out.push((format!("{pre}/spoutLag"), lag));
            out.push((format!("{pre}/latestTimeOffset"), p.high_watermark));
            out.push((format!("{pre}/latestEmittedOffset"), p.next - 1));
            out.push((format!("{pre}/latestCompletedOffset"), done));
            *totals.entry(&p.topic).or_insert(0) += lag;
        }
        for (t, lag) in totals {
            out.push((format!("kafkaOffset/{t}/totalSpoutLag"), lag));
        }
        out
    }

    fn is_finished(&self) -> bool {
        self.cfg.stop_when_caught_up
            && self.assigned
            && self.retries.is_empty()
            && self
                .parts
                .iter()
                .filter(|p| p.active)
                .all(|p| p.caught_up && p.ready.is_empty() && p.inflight.is_empty())
    }

    /// The next offset to emit of each partition this task reads, as `{"topic/partition": n}`.
    fn position(&self) -> Option<serde_json::Value> {
        let mut m = serde_json::Map::new();
        for p in self.parts.iter().filter(|p| p.active) {
            m.insert(format!("{}/{}", p.topic, p.partition), p.next.into());
        }
        // Positions asked for but not reached yet (before the first assignment) stay.
        if let Some(w) = &self.wanted_positions {
            for (k, v) in w {
                m.entry(k.clone()).or_insert((*v).into());
            }
        }
        Some(serde_json::json!({ "offsets": m }))
    }

    fn seek(&mut self, position: Option<&serde_json::Value>) -> Result<(), ComponentError> {
        let wanted: BTreeMap<String, i64> = position
            .and_then(|p| p.get("offsets"))
            .and_then(|o| o.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        self.epoch = self.epoch.wrapping_add(1);
        self.retries.clear();
        self.retry_counts.clear();
        for p in &mut self.parts {
            p.ready.clear();
            p.inflight.clear();
            p.caught_up = false;
            if let Some(&o) = wanted.get(&format!("{}/{}", p.topic, p.partition)) {
                p.next = o;
            } else if position.is_none() {
                // Back to where this task started it.
                p.next = p.committed.min(p.next);
            }
        }
        self.wanted_positions = (!wanted.is_empty()).then_some(wanted);
        if self.assigned {
            self.send_assignment();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pack_and_unpack() {
        for (e, s, o) in [
            (0u8, 0usize, 0i64),
            (255, 4095, (1 << 44) - 1),
            (7, 3, 123_456_789),
        ] {
            assert_eq!(unpack(pack(e, s, o)), (e, s, o));
        }
    }

    #[test]
    fn partitions_are_dealt_round_robin_over_tasks() {
        let all: Vec<(String, i32)> = [("b", 0), ("a", 1), ("a", 0), ("b", 1), ("a", 2)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        let t0 = assign(&all, 0, 2);
        let t1 = assign(&all, 1, 2);
        let s = |v: &[(String, i32)]| v.iter().map(|(t, p)| format!("{t}{p}")).collect::<Vec<_>>();
        assert_eq!(s(&t0), vec!["a0", "a2", "b1"]);
        assert_eq!(s(&t1), vec!["a1", "b0"]);
        // Every partition exactly once, whatever the task count.
        for n in 1..=6 {
            let mut got: Vec<(String, i32)> = (0..n).flat_map(|i| assign(&all, i, n)).collect();
            got.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(got, want, "{n} tasks");
        }
    }

    #[test]
    fn first_poll_strategies_as_storm() {
        let ours = Committed {
            offset: 50,
            metadata: r#"{"taskId":1,"threadName":"x","topologyId":"wc"}"#.into(),
        };
        let theirs = Committed {
            offset: 40,
            metadata: r#"{"topologyId":"other"}"#.into(),
        };
        use FirstPoll::*;
        let table = [
            (Earliest, None, 10),
            (Earliest, Some(&ours), 50),
            (Earliest, Some(&theirs), 10),
            (Latest, Some(&theirs), 90),
            (Latest, Some(&ours), 50),
            (UncommittedEarliest, None, 10),
            (UncommittedEarliest, Some(&theirs), 40),
            (UncommittedLatest, None, 90),
            (UncommittedLatest, Some(&ours), 50),
        ];
        for (s, c, want) in table {
            assert_eq!(first_offset(s, c, "wc", 10, 90), want, "{s:?} {c:?}");
        }
    }
}
