//! TCP between workers: batches as length-prefixed rmp-serde frames.
//!
//! A frame is a big-endian `u32` length and an rmp-serde [`WireBatch`]. One sender thread per
//! remote worker drains a bounded queue (so a slow link blocks the executors feeding it:
//! backpressure, not memory) and reconnects with backoff while the peer is not up. The listener
//! runs a reader thread per connection; a malformed or oversized frame closes that connection
//! with a logged reason and nothing else.

use crate::handshake::{ClusterSecret, HandshakeError, PROVE_WITHIN};
use crate::runtime::{Batch, Inbound};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use flux::Topology;
#[cfg(test)]
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use topology_api::wire::{self, put_uint};
use topology_api::{AckIds, StreamSource, Values};

/// Largest frame accepted (16 MiB): a bigger length prefix closes the connection before any of
/// the frame is read. A sender splits a batch that would not fit into several frames, so only a
/// single tuple over the limit cannot travel between workers.
pub const MAX_FRAME: usize = 16 << 20;

/// How long a connection may stop in the middle of a frame before it is closed: a peer writes a
/// frame whole, so a half-sent frame that sits is a peer that is gone or is not a worker.
pub const STALLED_FRAME: Duration = Duration::from_secs(10);

/// One batch on the wire. Each tuple names its source by index into `sources`. (Its serde form,
/// tests only, is the rmp-serde reference the hand-written encoder and reader are held to: the
/// one msgpack reader of values in Gale is `topology_api::wire::Reader`.)
#[derive(Debug, Default, PartialEq)]
#[cfg_attr(test, derive(Serialize, Deserialize))]
pub struct WireBatch {
    pub sources: Vec<(String, String)>,
    pub tuples: Vec<WireTuple>,
}

impl WireBatch {
    /// A frame consumer's start (see [`decode_with`]): the frame's sources, room for its tuples.
    fn collect(sources: Vec<(String, String)>, tuples: usize) -> Self {
        WireBatch {
            sources,
            tuples: Vec::with_capacity(tuples.min(4096)),
        }
    }

    fn push(&mut self, t: WireTupleRef<'_>) {
        self.tuples.push(WireTuple {
            task: t.task,
            source_task: t.source_task,
            source: t.source,
            values: wire::to_values(t.values),
            ack_ids: t.ack_ids,
            born_us: t.born_us,
        });
    }
}

/// A tuple as the decoder hands it over: its values are still bytes (checked: an array of
/// values as [`wire::put_values`] writes them), ready to be copied into a batch.
#[derive(Debug)]
pub struct WireTupleRef<'a> {
    pub task: u32,
    pub source_task: u32,
    pub source: u16,
    pub values: &'a [u8],
    pub ack_ids: AckIds,
    pub born_us: u64,
}

#[derive(Debug, PartialEq)]
#[cfg_attr(test, derive(Serialize, Deserialize))]
pub struct WireTuple {
    pub task: u32,
    pub source_task: u32,
    pub source: u16,
    #[cfg_attr(test, serde(with = "wire_values"))]
    pub values: Values,
    #[cfg_attr(test, serde(deserialize_with = "cautious"))]
    pub ack_ids: AckIds,
    #[cfg_attr(test, serde(default))]
    pub born_us: u64,
}

/// Values as plain msgpack (nil, bool, int, float, str, bin, array), not serde's enum form with a
/// variant name per value: a third of the bytes for a word, and the decoder does not match
/// variant names (measured: decoding was the largest cost of a cluster word count). Tests only:
/// the serde reference of the frame's values.
#[cfg(test)]
mod wire_values {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};
    use std::fmt;
    use topology_api::{Value, Values, value::small_str};

    struct Wire<'a>(&'a Value);

    impl Serialize for Wire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Null => s.serialize_unit(),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Int(i) => s.serialize_i64(*i),
                Value::Float(f) => s.serialize_f64(*f),
                Value::Str(t) => s.serialize_str(t),
                Value::Bytes(b) => s.serialize_bytes(b),
                Value::List(l) => {
                    let mut seq = s.serialize_seq(Some(l.len()))?;
                    for v in l.iter() {
                        seq.serialize_element(&Wire(v))?;
                    }
                    seq.end()
                }
            }
        }
    }

    pub fn serialize<S: Serializer>(values: &Values, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for v in values {
            seq.serialize_element(&Wire(v))?;
        }
        seq.end()
    }

    /// One value read back.
    struct Owned(Value);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ValueVisitor).map(Owned)
        }
    }

    struct ValueVisitor;

    impl<'de> Visitor<'de> for ValueVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a tuple value")
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
            Ok(Value::Bool(b))
        }
        fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
            Ok(Value::Int(i))
        }
        fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
            i64::try_from(u)
                .map(Value::Int)
                .map_err(|_| E::custom(format!("integer {u} does not fit in an i64")))
        }
        fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
            Ok(Value::Float(f))
        }
        fn visit_str<E>(self, s: &str) -> Result<Value, E> {
            Ok(Value::Str(small_str(s)))
        }
        fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
            Ok(Value::Bytes(b.into()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Owned(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Value::List(out.into()))
        }
    }

    struct ValuesVisitor;

    impl<'de> Visitor<'de> for ValuesVisitor {
        type Value = Values;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of tuple values")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
            // Not the length the peer claims: it could claim billions.
            let mut out = Values::new();
            while let Some(Owned(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        d.deserialize_seq(ValuesVisitor)
    }
}

/// A SmallVec without trusting the element count a peer claims: smallvec's own `Deserialize`
/// reserves the claimed count up front, so five bytes could ask for gigabytes.
#[cfg(test)]
fn cautious<'de, D, A>(d: D) -> Result<smallvec::SmallVec<A>, D::Error>
where
    D: Deserializer<'de>,
    A: smallvec::Array,
    A::Item: Deserialize<'de>,
{
    struct V<A>(std::marker::PhantomData<A>);
    impl<'de, A: smallvec::Array> serde::de::Visitor<'de> for V<A>
    where
        A::Item: Deserialize<'de>,
    {
        type Value = smallvec::SmallVec<A>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(
            self,
            mut seq: S,
        ) -> Result<Self::Value, S::Error> {
            let mut out = smallvec::SmallVec::new();
            while let Some(v) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(std::marker::PhantomData))
}

/// Encodes a batch into a frame (length prefix included) in `out`.
///
/// Written by hand with rmp's primitives, the same calls rmp-serde makes for [`WireBatch`], so the
/// bytes are what rmp-serde writes (a test holds them equal to `encode_with_serde`); without the
/// intermediate `WireBatch` and serde's generic path.
pub fn encode(batch: Batch, out: &mut Vec<u8>) -> Result<(), String> {
    use rmp::encode as w;
    out.clear();
    out.extend_from_slice(&[0; 4]);
    let sources = batch.sources();
    w::write_array_len(out, 2).map_err(err)?;
    w::write_array_len(out, sources.len() as u32).map_err(err)?;
    for s in sources {
        w::write_array_len(out, 2).map_err(err)?;
        w::write_str(out, &s.component).map_err(err)?;
        w::write_str(out, &s.stream).map_err(err)?;
    }
    w::write_array_len(out, batch.len() as u32).map_err(err)?;
    let mut last = 0usize;
    for (task, t) in batch.iter() {
        // The batch's own source table is the frame's: find this tuple's entry (nearly always
        // the one before).
        let src = t.source();
        if !sources.get(last).is_some_and(|s| std::ptr::eq(*s, src)) {
            last = sources
                .iter()
                .position(|s| std::ptr::eq(*s, src))
                .unwrap_or(0);
        }
        // The values are already msgpack, in rmp-serde's forms: they are copied as they are.
        let values = t.values_bytes();
        let acks = usize::from(t.ack_count());
        out.reserve(32 + values.len() + 19 * acks);
        out.push(0x96);
        put_uint(out, u64::from(task));
        put_uint(out, u64::from(t.source_task()));
        put_uint(out, last as u64);
        out.extend_from_slice(values);
        w::write_array_len(out, acks as u32).map_err(err)?;
        for (root, edge) in t.ack_pairs() {
            out.push(0x92);
            put_uint(out, root);
            put_uint(out, edge);
        }
        put_uint(out, t.born_us());
    }
    finish_frame(out)
}

/// Writing to a `Vec` does not fail; rmp's error types are turned into text all the same.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Checks the size and writes the length prefix of a frame built after 4 placeholder bytes.
fn finish_frame(out: &mut [u8]) -> Result<(), String> {
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(format!(
            "batch of {len} bytes exceeds the {MAX_FRAME}-byte frame limit"
        ));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// [`encode`] into one frame or, when the batch is larger than [`MAX_FRAME`], into as many frames
/// back to back as it needs (halving it until each part fits). Fails only for a single tuple over
/// the limit, which is dropped with the error.
pub fn encode_split(batch: Batch, out: &mut Vec<u8>) -> Result<(), String> {
    if batch.len() < 2 || batch.byte_len() < MAX_FRAME / 2 {
        return encode(batch, out);
    }
    let half = batch.len() / 2;
    let (mut a, mut b) = (Batch::with_capacity(half), Batch::with_capacity(half + 1));
    for (i, (task, t)) in batch.iter().enumerate() {
        let part = if i < half { &mut a } else { &mut b };
        part.push_tuple(task, &t).map_err(err)?;
    }
    let mut rest = Vec::new();
    encode_split(a, out)?;
    encode_split(b, &mut rest)?;
    out.extend_from_slice(&rest);
    Ok(())
}

/// [`encode`] through rmp-serde and an intermediate [`WireBatch`]: the reference the hand-written
/// encoder is tested against.
#[cfg(test)]
pub fn encode_with_serde(batch: Batch, out: &mut Vec<u8>) -> Result<(), String> {
    let mut wire = WireBatch::default();
    let mut seen: Vec<&'static StreamSource> = Vec::new();
    for (task, t) in batch.iter() {
        let src = t.source();
        let idx = match seen.iter().position(|s| std::ptr::eq(*s, src)) {
            Some(i) => i,
            None => {
                seen.push(src);
                wire.sources
                    .push((src.component.clone(), src.stream.clone()));
                seen.len() - 1
            }
        };
        wire.tuples.push(WireTuple {
            task,
            source_task: t.source_task(),
            source: idx as u16,
            values: t.to_values(),
            ack_ids: t.ack_ids(),
            born_us: t.born_us(),
        });
    }
    out.clear();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write(out, &wire).map_err(|e| e.to_string())?;
    finish_frame(out)
}

/// Decodes a frame body.
///
/// The frame is what rmp-serde writes for [`WireBatch`] (structs as arrays); it is read by hand
/// here, straight off the slice, because serde's generic path was most of a cluster worker's CPU.
/// `decode_with_serde` (tests only) reads the same bytes the generic way; tests hold the two equal.
pub fn decode(body: &[u8]) -> Result<WireBatch, String> {
    decode_with(body, WireBatch::collect, WireBatch::push)
}

/// Decodes a frame body, handing each tuple to `each` as it is read (no vector of tuples in
/// between): `begin` gets the frame's sources and tuple count first and makes the state.
pub fn decode_with<S>(
    body: &[u8],
    begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
    each: impl FnMut(&mut S, WireTupleRef<'_>),
) -> Result<S, String> {
    read_frame(body, begin, each).map_err(|e| format!("malformed frame: {e}"))
}

/// [`decode`] through rmp-serde: the reference the hand-written reader is tested against.
#[cfg(test)]
pub fn decode_with_serde(body: &[u8]) -> Result<WireBatch, String> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    // Values nest (lists of lists); a peer must not make the decoder recurse without bound.
    de.set_max_depth(MAX_DEPTH);
    WireBatch::deserialize(&mut de).map_err(|e| format!("malformed frame: {e}"))
}

/// Reads a frame (see [`decode_with`]) with the value reader of [`topology_api::wire`]: every
/// length is checked against the bytes left before anything is allocated for it, and each
/// tuple's values are checked (UTF-8, depth, integer range) and handed over as bytes.
fn read_frame<S>(
    body: &[u8],
    begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
    mut each: impl FnMut(&mut S, WireTupleRef<'_>),
) -> Result<S, &'static str> {
    let mut r = wire::Reader { b: body };
    if r.array()? != 2 {
        return Err("a batch is [sources, tuples]");
    }
    let n = r.array()?;
    let mut sources = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        if r.array()? != 2 {
            return Err("a source is [component, stream]");
        }
        let c = r.str()?.to_owned();
        sources.push((c, r.str()?.to_owned()));
    }
    let n = r.array()?;
    let mut state = begin(sources, n);
    for _ in 0..n {
        if r.array()? != 6 {
            return Err("a tuple is [task, source_task, source, values, ack_ids, born_us]");
        }
        let task = r.uint()?;
        let source_task = r.uint()?;
        let source = r.uint()?;
        let start = r.b;
        let count = r.array()?;
        for _ in 0..count {
            r.skip_value()?;
        }
        let values = &start[..start.len() - r.b.len()];
        let mut ack_ids = AckIds::new();
        for _ in 0..r.array()? {
            if r.array()? != 2 {
                return Err("an ack id is [root, edge]");
            }
            let root = r.uint()?;
            ack_ids.push((root, r.uint()?));
        }
        let born_us = r.uint()?;
        each(
            &mut state,
            WireTupleRef {
                task,
                source_task,
                source,
                values,
                ack_ids,
                born_us,
            },
        );
    }
    Ok(state)
}

/// Deepest nesting of lists accepted in a frame.
pub const MAX_DEPTH: usize = wire::MAX_DEPTH;

/// Splits the bytes of one connection into frames and decodes them. Pure: the reader thread
/// feeds it what the socket gives; the fuzz target feeds it anything.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether part of a frame has arrived and the rest has not.
    pub fn partial(&self) -> bool {
        self.buf.len() > self.start
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. An error means the
    /// connection is not speaking Gale's protocol and must be closed.
    pub fn next_frame(&mut self) -> Result<Option<WireBatch>, String> {
        self.next_frame_with(WireBatch::collect, WireBatch::push)
    }

    /// As [`FrameReader::next_frame`], handing the tuples to `each` as they are decoded.
    pub fn next_frame_with<S>(
        &mut self,
        begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
        each: impl FnMut(&mut S, WireTupleRef<'_>),
    ) -> Result<Option<S>, String> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_FRAME {
            return Err(format!(
                "frame of {len} bytes is larger than the {MAX_FRAME}-byte limit"
            ));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let state = decode_with(&avail[4..4 + len], begin, each)?;
        self.start += 4 + len;
        if self.start > (1 << 20) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(state))
    }
}

/// Starts a sender thread per remote worker; returns their queues, in `addrs` order.
pub fn start_senders(
    addrs: &[SocketAddr],
    capacity: usize,
    stop: Arc<AtomicBool>,
    secret: Option<ClusterSecret>,
) -> (Vec<Sender<Batch>>, Vec<JoinHandle<()>>) {
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    for addr in addrs {
        let (tx, rx) = bounded(capacity.max(2));
        queues.push(tx);
        let addr = *addr;
        let stop = stop.clone();
        let secret = secret.clone();
        if let Ok(h) = std::thread::Builder::new()
            .name(format!("gale-send-{addr}"))
            .spawn(move || send_loop(addr, rx, stop, secret))
        {
            handles.push(h);
        }
    }
    (queues, handles)
}

fn send_loop(
    addr: SocketAddr,
    rx: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    secret: Option<ClusterSecret>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut frame = Vec::with_capacity(64 << 10);
    let mut backoff = Duration::from_millis(20);
    loop {
        let batch = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            // Every executor feeding this peer has ended.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Err(e) = encode_split(batch, &mut frame) {
            tracing::error!(peer = %addr, error = %e, "Dropping a batch that cannot be encoded");
            continue;
        }
        loop {
            if conn.is_none() {
                let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .map_err(HandshakeError::Io)
                    .and_then(|mut s| match &secret {
                        Some(k) => k.prove(&mut s, PROVE_WITHIN).map(|()| s),
                        None => Ok(s),
                    });
                match connected {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        tracing::debug!(peer = %addr, "Connected to worker");
                        conn = Some(s);
                        backoff = Duration::from_millis(20);
                    }
                    Err(e @ (HandshakeError::NoChallenge | HandshakeError::WrongSecret)) => {
                        tracing::warn!(peer = %addr, error = %e, "Worker refused; retrying");
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                    Err(e) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tracing::debug!(peer = %addr, error = %e, "Worker not reachable yet; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            match s.write_all(&frame) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(peer = %addr, error = %e, "Connection to worker lost; reconnecting");
                    conn = None;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
    }
}

/// Accepts connections from other workers and feeds their batches to the local executors.
/// Most connections a worker port keeps open at once (one per remote executor that sends to
/// it); more are closed as they arrive, so idle connections cannot pile up threads.
pub const MAX_CONNECTIONS: usize = 1024;

pub fn start_listener(
    listener: TcpListener,
    topology: Arc<Topology>,
    inbound: Arc<Inbound>,
    stop: Arc<AtomicBool>,
    secret: Option<ClusterSecret>,
) -> std::io::Result<JoinHandle<()>> {
    start_listener_with(listener, topology, inbound, stop, secret, MAX_CONNECTIONS)
}

fn start_listener_with(
    listener: TcpListener,
    topology: Arc<Topology>,
    inbound: Arc<Inbound>,
    stop: Arc<AtomicBool>,
    secret: Option<ClusterSecret>,
    max_connections: usize,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("gale-listen".into())
        .spawn(move || {
            let mut readers: Vec<JoinHandle<()>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) if readers.len() >= max_connections => {
                        tracing::warn!(%peer, "Closing a connection: {max_connections} are open");
                        drop(s);
                    }
                    Ok((mut s, peer)) => {
                        let (t, i, st) = (topology.clone(), inbound.clone(), stop.clone());
                        let secret = secret.clone();
                        if let Ok(h) = std::thread::Builder::new()
                            .name(format!("gale-recv-{peer}"))
                            .spawn(move || {
                                let _ = s.set_nonblocking(false);
                                if let Some(k) = &secret
                                    && let Err(e) = k.challenge(&mut s, PROVE_WITHIN)
                                {
                                    tracing::warn!(%peer, error = %e, "Closing connection before any frame");
                                    return;
                                }
                                read_loop(s, peer, &t, &i, &st)
                            })
                        {
                            readers.push(h);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                readers.retain(|h| !h.is_finished());
            }
            drop(listener);
            for h in readers {
                let _ = h.join();
            }
        })
}

fn read_loop(
    mut s: TcpStream,
    peer: SocketAddr,
    topology: &Topology,
    inbound: &Inbound,
    stop: &AtomicBool,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut frames = FrameReader::default();
    let mut chunk = vec![0u8; 64 << 10];
    let mut sources: HashMap<(String, String), Option<&'static StreamSource>> = HashMap::new();
    let mut progress = std::time::Instant::now();
    loop {
        // Complete frames first.
        loop {
            let next = frames.next_frame_with(
                |names, n| Dispatch::new(names, n, topology, inbound, &mut sources),
                Dispatch::push,
            );
            match next {
                Ok(Some(d)) => {
                    if !d.send() {
                        return;
                    }
                    // Sending may have waited on a full queue: that is not the peer stalling.
                    progress = std::time::Instant::now();
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "Closing connection");
                    return;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                frames.feed(&chunk[..n]);
                progress = std::time::Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if frames.partial() && progress.elapsed() >= STALLED_FRAME {
                    tracing::warn!(%peer, "Closing connection: half a frame and nothing more for {STALLED_FRAME:?}");
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "Connection closed");
                return;
            }
        }
    }
}

/// One frame's tuples on their way to the local queues: decoded tuples go straight into the
/// batch of the queue of their task.
struct Dispatch<'a> {
    resolved: Vec<Option<&'static StreamSource>>,
    per_queue: Vec<Batch>,
    inbound: &'a Inbound,
    /// Tuples in the frame: a queue's batch is given room for all of them when its first tuple
    /// arrives (a frame comes from one sending executor and mostly feeds one queue), so it never
    /// grows by copying.
    tuples: usize,
}

impl<'a> Dispatch<'a> {
    fn new(
        names: Vec<(String, String)>,
        tuples: usize,
        topology: &Topology,
        inbound: &'a Inbound,
        cache: &mut HashMap<(String, String), Option<&'static StreamSource>>,
    ) -> Self {
        let resolved = names
            .into_iter()
            .map(|key| {
                *cache.entry(key).or_insert_with_key(|(c, st)| {
                    topology
                        .stream_fields(c, st)
                        .map(|f| StreamSource::intern(c, st, f))
                        .or_else(|| topology_api::system_source(c, st))
                })
            })
            .collect();
        Dispatch {
            resolved,
            per_queue: (0..inbound.queue_count())
                .map(|_| Batch::default())
                .collect(),
            inbound,
            tuples: tuples.min(1 << 16),
        }
    }

    #[inline]
    fn push(&mut self, t: WireTupleRef<'_>) {
        let (Some(Some(src)), Some(q)) = (
            self.resolved.get(t.source as usize),
            self.inbound.queue_index(t.task),
        ) else {
            tracing::warn!(
                task = t.task,
                "Dropping a tuple for a task or stream this worker does not have"
            );
            return;
        };
        let batch = &mut self.per_queue[q];
        if batch.is_empty() && batch.byte_len() == 0 {
            *batch = Batch::with_capacity(self.tuples);
        }
        if let Err(e) =
            batch.push_encoded(t.task, src, t.source_task, t.born_us, &t.ack_ids, t.values)
        {
            tracing::warn!(task = t.task, error = %e, "Dropping a tuple");
        }
    }

    /// Hands the batches to the local queues; false when the worker is shutting down.
    fn send(self) -> bool {
        for (q, items) in self.per_queue.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let Some(tx) = self.inbound.queue(q) else {
                continue;
            };
            // Frames carry at most one sender-side batch, so this stays within the batch size.
            if tx.send(items).is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topology_api::{Fields, Tuple, Value, values};

    /// A batch of owned tuples, each addressed to its task.
    pub(super) fn batch_of(items: Vec<(u32, Tuple<'static>)>) -> Batch {
        let mut b = Batch::with_capacity(items.len());
        for (task, t) in &items {
            b.push_tuple(*task, t).expect("fits");
        }
        b
    }

    #[test]
    fn frames_round_trip() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let batch = batch_of(vec![
            (3, Tuple::new(src, 1, values!["storm"])),
            (4, Tuple::new(src, 2, values!["gale", 7])),
        ]);
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        let w = decode(&f[4..]).expect("decodes");
        assert_eq!(w.sources, vec![("split".to_owned(), "default".to_owned())]);
        assert_eq!(w.tuples[1].values[1], Value::Int(7));
        assert_eq!(w.tuples[0].task, 3);
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let src = StreamSource::intern("split", "default", &Fields::new(["a"]));
        let long = "a string longer than twenty-three bytes, kept behind an Arc";
        let vals = values![
            Value::Null,
            true,
            -7,
            i64::MAX,
            2.5,
            "word",
            long,
            Value::Bytes(vec![0u8, 255, 7].into()),
            Value::List(vec![Value::Int(1), Value::List(vec![Value::from("x")].into())].into())
        ];
        let batch = batch_of(vec![(9, Tuple::new(src, 2, vals.clone()))]);
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        let w = decode(&f[4..]).expect("decodes");
        assert_eq!(w.tuples[0].values, vals);
    }

    /// The hand-written reader agrees with rmp-serde on what rmp-serde wrote.
    #[test]
    fn hand_reader_matches_serde() {
        let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
        let other = StreamSource::intern("split", "words", &Fields::new(["w"]));
        let mut items = Vec::new();
        for i in 0..300u32 {
            let mut t = Tuple::new(
                if i % 3 == 0 { other } else { src },
                i,
                values![format!("w{i}").as_str(), i64::from(i) * -1_000_003],
            )
            .with_born(u64::from(i) << 33);
            if i % 2 == 0 {
                t = t.with_ack_ids(&[(u64::MAX - u64::from(i), u64::from(i))]);
            }
            items.push((i * 7, t));
        }
        let batch = batch_of(items);
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        assert_eq!(decode(&f[4..]), decode_with_serde(&f[4..]));
        assert_eq!(decode(&f[4..]).expect("ok").tuples.len(), 300);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"\x92\x90", &[0x93; 64]] {
            assert!(decode(bytes).is_err() || decode(bytes).is_ok());
        }
        assert!(decode(b"\xc1").is_err());
    }

    /// A tuple claiming 2^32-1 values (or ack ids) in a 30-byte frame must be refused
    /// without reserving room for them: smallvec's own Deserialize would reserve ~100 GB.
    #[test]
    fn claimed_counts_do_not_allocate() {
        // [sources: [], tuples: [[task, source_task, source, values: array32(0xffffffff)]]]
        let body = b"\x92\x90\x91\x96\x01\x01\x00\xdd\xff\xff\xff\xff\x01";
        assert!(decode(body).is_err());
        let body = b"\x92\x90\x91\x96\x01\x01\x00\x90\xdd\xff\xff\xff\xff\x00";
        assert!(decode(body).is_err());
    }

    #[test]
    fn frame_reader_splits_any_chunking_and_refuses_oversized() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let mut bytes = Vec::new();
        for i in 0..3 {
            let mut f = Vec::new();
            let batch = batch_of(vec![(i, Tuple::new(src, 1, values!["w"]))]);
            encode(batch, &mut f).expect("encodes");
            bytes.extend_from_slice(&f);
        }
        for chunk in [1, 3, 7, 1000] {
            let mut r = FrameReader::default();
            let mut tasks = Vec::new();
            for c in bytes.chunks(chunk) {
                r.feed(c);
                while let Some(w) = r.next_frame().expect("valid") {
                    tasks.extend(w.tuples.iter().map(|t| t.task));
                }
            }
            assert_eq!(tasks, vec![0, 1, 2]);
        }
        let mut r = FrameReader::default();
        r.feed(&u32::MAX.to_be_bytes());
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn deep_lists_are_refused() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let nested = |depth: usize| {
            let mut v = Value::Int(1);
            for _ in 0..depth {
                v = Value::List(vec![v].into());
            }
            let mut f = Vec::new();
            let batch = batch_of(vec![(1, Tuple::new(src, 1, values![v]))]);
            encode(batch, &mut f).expect("encodes");
            f
        };
        assert!(decode(&nested(10)[4..]).is_ok());
        let e = decode(&nested(200)[4..]).expect_err("too deep");
        assert!(e.contains("depth"), "{e}");
    }
}

#[cfg(test)]
mod hostile {
    use super::tests::batch_of;
    use super::*;
    use proptest::prelude::*;
    use topology_api::{Fields, Tuple, values};

    fn value() -> impl Strategy<Value = topology_api::Value> {
        use topology_api::Value as V;
        let leaf = prop_oneof![
            Just(V::Null),
            any::<bool>().prop_map(V::Bool),
            any::<i64>().prop_map(V::Int),
            // Every msgpack integer width: fixints, 8/16/32-bit, negative forms.
            (-70_000i64..5_000_000_000).prop_map(V::Int),
            (-1e12f64..1e12).prop_map(V::Float),
            ".{0,40}".prop_map(|s: String| V::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| V::Bytes(b.into())),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(|l| V::List(l.into()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Random batches: the hand-written reader reads what rmp-serde wrote as rmp-serde does.
        #[test]
        fn hand_reader_agrees_on_random_batches(
            tuples in proptest::collection::vec(
                (prop_oneof![0..300u32, any::<u32>()], any::<u32>(), proptest::collection::vec(value(), 0..4), any::<u64>(),
                 proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3)),
                0..40,
            )
        ) {
            let src = StreamSource::intern("p", "default", &topology_api::Fields::new(["a"]));
            let batch = tests::batch_of(tuples
                .into_iter()
                .map(|(task, st, vals, born, acks)| {
                    (task, Tuple::new(src, st, vals.into_iter().collect())
                        .with_born(born)
                        .with_ack_ids(&acks))
                })
                .collect());
            let mut f = Vec::new();
            encode(batch.clone(), &mut f).expect("encodes");
            let mut g = Vec::new();
            encode_with_serde(batch, &mut g).expect("encodes");
            prop_assert_eq!(&f, &g, "the hand-written encoder writes rmp-serde's bytes");
            let hand = decode(&f[4..]);
            prop_assert!(hand.is_ok(), "{:?}", hand);
            prop_assert_eq!(hand, decode_with_serde(&f[4..]));
        }

        /// A frame body is peer input: any bytes give a decoded batch or an error, never a panic;
        /// and whatever rmp-serde accepts, the hand-written reader reads the same way.
        #[test]
        fn any_frame_body_decodes_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let hand = decode(&bytes);
            if let Ok(reference) = decode_with_serde(&bytes) {
                prop_assert_eq!(hand, Ok(reference));
            }
        }
    }

    /// A listener with no cluster secret (the weakest setting) on a free loopback port.
    fn listen() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        listen_max(MAX_CONNECTIONS)
    }

    fn listen_max(max: usize) -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let yaml = "name: t\nspouts: [{id: s, className: TestWordSpout}]\nbolts: [{id: b, className: LogInfoBolt}]\nstreams: [{from: s, to: b, grouping: {type: SHUFFLE}}]\n";
        let reg = <topology_api::Registry as components::Builtins>::with_builtins();
        let l = flux::load_bytes(
            "t.yaml",
            yaml.as_bytes(),
            &reg,
            &Default::default(),
            &|_| None,
        )
        .expect("valid");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let h = start_listener_with(
            listener,
            Arc::new(l.topology),
            Arc::new(Inbound::default()),
            stop.clone(),
            None,
            max,
        )
        .expect("listens");
        (addr, stop, h)
    }

    /// Whether the peer closed `s` within `within` (end of stream or a reset).
    fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).expect("timeout");
        let mut b = [0u8; 16];
        loop {
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            }
        }
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Ten connections that each announce a 64 MiB frame and start sending it: each is closed on
    /// its length prefix, and the worker's memory does not grow by what they announced.
    #[test]
    fn ten_64_mib_frame_headers_are_refused_without_memory_growing() {
        let (addr, stop, h) = listen();
        let before = rss_kib();
        let payload = vec![0u8; 1 << 20];
        for _ in 0..10 {
            let mut s = TcpStream::connect(addr).expect("connects");
            s.write_all(&(64u32 << 20).to_be_bytes()).expect("header");
            // The worker may already have closed: writing the body then fails, as it should.
            for _ in 0..4 {
                if s.write_all(&payload).is_err() {
                    break;
                }
            }
            assert!(
                closed_within(&mut s, Duration::from_secs(5)),
                "connection left open"
            );
        }
        let grown = rss_kib().saturating_sub(before);
        assert!(grown < 32 << 10, "the worker grew by {grown} KiB");
        stop.store(true, Ordering::SeqCst);
        h.join().expect("listener ends");
    }

    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
    }

    /// Idle connections past the limit (40 here, 1,024 in a worker) are closed as they arrive:
    /// they cannot pile up threads (2,000 idle connections once made 1,707).
    #[test]
    fn idle_connections_past_the_limit_are_closed_and_hold_no_thread() {
        let (addr, stop, h) = listen_max(40);
        let before = threads();
        let mut open = Vec::new();
        for _ in 0..40 {
            open.push(TcpStream::connect(addr).expect("connects"));
        }
        // Let the listener take them all before the next ones arrive.
        let t = std::time::Instant::now();
        while threads() < before + 40 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut refused = 0;
        for _ in 0..60 {
            let mut s = TcpStream::connect(addr).expect("connects");
            if closed_within(&mut s, Duration::from_secs(5)) {
                refused += 1;
            }
        }
        assert_eq!(refused, 60, "connections past the limit left open");
        // (Other tests of this binary start a few threads meanwhile: slack of 10, not of 60.)
        let grown = threads().saturating_sub(before);
        assert!(grown <= 50, "{grown} threads for 40 allowed connections");
        drop(open);
        stop.store(true, Ordering::SeqCst);
        h.join().expect("listener ends");
    }

    /// Half a frame and then silence: the connection is closed after [`STALLED_FRAME`].
    #[test]
    fn a_half_sent_frame_is_closed_after_the_stall_timeout() {
        let (addr, stop, h) = listen();
        let mut s = TcpStream::connect(addr).expect("connects");
        s.write_all(&100u32.to_be_bytes()).expect("header");
        s.write_all(&[0x92; 10]).expect("part of the body");
        let t = std::time::Instant::now();
        assert!(closed_within(
            &mut s,
            STALLED_FRAME + Duration::from_secs(5)
        ));
        let waited = t.elapsed();
        assert!(
            waited >= STALLED_FRAME - Duration::from_secs(1),
            "closed after {waited:?}"
        );
        stop.store(true, Ordering::SeqCst);
        h.join().expect("listener ends");
    }

    /// A batch larger than a frame travels as several frames, every tuple in order.
    #[test]
    fn a_batch_over_the_frame_limit_is_split_into_frames() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let big = "x".repeat(MAX_FRAME / 3);
        let items = (0..5)
            .map(|i| (i, Tuple::new(src, 1, values![big.clone()])))
            .collect();
        let mut out = Vec::new();
        encode_split(batch_of(items), &mut out).expect("splits");
        let mut r = FrameReader::default();
        r.feed(&out);
        let (mut frames, mut tasks) = (0, Vec::new());
        while let Some(w) = r.next_frame().expect("valid frames") {
            frames += 1;
            tasks.extend(w.tuples.iter().map(|t| t.task));
        }
        assert!(frames >= 3, "{frames} frames");
        assert_eq!(tasks, vec![0, 1, 2, 3, 4]);
        let one = "x".repeat(MAX_FRAME + 1);
        let alone = batch_of(vec![(0, Tuple::new(src, 1, values![one]))]);
        assert!(encode_split(alone, &mut out).is_err());
    }
}
