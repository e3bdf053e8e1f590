//! `KafkaBolt`: writes tuples to a topic, as Storm's `org.apache.storm.kafka.bolt.KafkaBolt`.
//!
//! Key and message come from named fields (Storm's `FieldNameBasedTupleToKafkaMapper`, default
//! fields `key` and `message`); the topic is fixed or read from a field. Records go to the
//! partition Kafka's own default partitioner picks (murmur2 of the key; keyless records round
//! robin), so a Java producer and Gale put a key in the same partition. A batch of tuples becomes
//! one produce request per partition, sent with acks=all: its tuples are acked once the broker
//! confirmed it, and failed (their spout replays them) when it did not.

use crate::client::KafkaClient;
use crate::config::{BoltConfig, TopicChoice};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use topology_api::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Inputs, OutputDeclarer, OutputSink,
    TopologyContext,
};
use topology_api::tuple::Tuple;
use topology_api::wire::ValueRef;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), as its default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    let seed: u32 = 0x9747_b28c;
    let m: u32 = 0x5bd1_e995;
    let r = 24;
    let len = data.len();
    let mut h: u32 = seed ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(m);
        k ^= k >> r;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(m);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(m);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `n`: Kafka's `toPositive(murmur2(key)) % n`.
pub fn partition_for(key: &[u8], n: usize) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as usize % n.max(1)) as i32
}

/// A value as record bytes: text as UTF-8, numbers as decimal text, bytes as they are, lists
/// as JSON; null as no bytes.
fn value_bytes(v: Option<ValueRef<'_>>) -> Option<Bytes> {
    Some(match v? {
        ValueRef::Null => return None,
        ValueRef::Str(s) => Bytes::copy_from_slice(s.as_bytes()),
        ValueRef::Bytes(b) => Bytes::copy_from_slice(b),
        ValueRef::Int(i) => Bytes::from(i.to_string()),
        ValueRef::Float(f) => Bytes::from(f.to_string()),
        ValueRef::Bool(b) => Bytes::from(b.to_string()),
        other => Bytes::from(serde_json::to_vec(&other.to_value()).unwrap_or_default()),
    })
}

pub struct KafkaBolt {
    cfg: BoltConfig,
    client: Option<KafkaClient>,
    /// Partition counts by topic, and when they were read.
    partitions: HashMap<String, (usize, Instant)>,
    round_robin: usize,
    component: String,
}

type Record = (Option<Bytes>, Option<Bytes>);

impl KafkaBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        Ok(KafkaBolt {
            cfg: BoltConfig::from_args(args)?,
            client: None,
            partitions: HashMap::new(),
            round_robin: 0,
            component: String::new(),
        })
    }

    fn topic_of(&self, t: &Tuple<'_>) -> Result<String, String> {
        match &self.cfg.topic {
            TopicChoice::Fixed(s) => Ok(s.clone()),
            TopicChoice::Field { field, default } => {
                match t.get_by_field(field).and_then(|v| value_bytes(Some(v))) {
                    Some(b) if !b.is_empty() => Ok(String::from_utf8_lossy(&b).into_owned()),
                    _ => default.clone().ok_or_else(|| {
                        format!("tuple has no topic in field \"{field}\" and no default topic")
                    }),
                }
            }
        }
    }

    fn record_of(&self, t: &Tuple<'_>) -> Result<Record, String> {
        let value = match t.get_by_field(&self.cfg.message_field) {
            Some(v) => value_bytes(Some(v)),
            None => {
                return Err(format!(
                    "tuple from {} has no field \"{}\" (its fields: {:?}); set messageField",
                    t.source_component(),
                    self.cfg.message_field,
                    t.fields()
                ));
            }
        };
        let key = if self.cfg.key_field.is_empty() {
            None
        } else {
            value_bytes(t.get_by_field(&self.cfg.key_field))
        };
        Ok((key, value))
    }

    fn partition_count(&mut self, topic: &str) -> Result<usize, String> {
        if let Some((n, at)) = self.partitions.get(topic)
            && at.elapsed() < Duration::from_secs(30)
        {
            return Ok(*n);
        }
        let client = self.client.as_mut().ok_or("not prepared")?;
        let n = client
            .partitions(topic)
            .map_err(|e| e.to_string())?
            .len()
            .max(1);
        self.partitions
            .insert(topic.to_owned(), (n, Instant::now()));
        Ok(n)
    }

    /// Sends one batch of tuples; returns, per tuple, whether it was written.
    fn send(&mut self, tuples: &[Tuple<'_>], sink: &mut dyn OutputSink) -> Vec<bool> {
        let mut ok = vec![true; tuples.len()];
        // (topic, partition) -> (tuple indexes, records), in order.
        let mut groups: BTreeMap<(String, i32), (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, t) in tuples.iter().enumerate() {
            let routed = self.topic_of(t).and_then(|topic| {
                let rec = self.record_of(t)?;
                let n = self.partition_count(&topic)?;
                let p = match &rec.0 {
                    Some(k) => partition_for(k, n),
                    None => {
                        self.round_robin = self.round_robin.wrapping_add(1);
                        (self.round_robin % n) as i32
                    }
                };
                Ok(((topic, p), rec))
            });
            match routed {
                Ok((tp, rec)) => {
                    let g = groups.entry(tp).or_default();
                    g.0.push(i);
                    g.1.push(rec);
                }
                Err(e) => {
                    sink.report_error(&format!("KafkaBolt {}: {e}", self.component));
                    ok[i] = false;
                }
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for ((topic, p), (idx, recs)) in groups {
            let Some(client) = self.client.as_mut() else {
                break;
            };
            if let Err(e) = client.produce(&topic, p, &recs, now_ms) {
                sink.report_error(&format!(
                    "KafkaBolt {}: writing {} record(s) to {topic}/{p}: {e}",
                    self.component,
                    recs.len()
                ));
                self.partitions.remove(&topic);
                if !self.cfg.fire_and_forget {
                    for i in idx {
                        ok[i] = false;
                    }
                }
            }
        }
        ok
    }
}

impl Bolt for KafkaBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.component = ctx.component_id.clone();
        if !self.cfg.other_props.is_empty() {
            tracing::debug!(props = ?self.cfg.other_props, "Kafka producer properties Gale does not use (it always sends acks=all)");
        }
        self.client = Some(KafkaClient::new(
            self.cfg.bootstrap.clone(),
            &format!(
                "gale-{}-{}-{}",
                ctx.topology_name, ctx.component_id, ctx.task_id
            ),
            Duration::from_secs(30),
        ));
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let ok = self.send(std::slice::from_ref(input), out.sink_mut());
        if ok[0] {
            out.ack(input);
        } else {
            out.fail(input);
        }
    }

    fn execute_batch(
        &mut self,
        inputs: Inputs<'_>,
        sink: &mut dyn OutputSink,
        _auto_ack: bool,
        _acking: bool,
    ) -> u64 {
        let tuples: Vec<Tuple<'_>> = inputs.collect();
        let ok = self.send(&tuples, sink);
        for (t, ok) in tuples.iter().zip(ok) {
            sink.begin_input(t);
            if ok {
                sink.ack(t);
            } else {
                sink.fail(t);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // Values of org.apache.kafka.common.utils.Utils.murmur2 (Kafka's UtilsTest).
        let table: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (input, want) in table {
            assert_eq!(murmur2(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn values_become_record_bytes() {
        assert_eq!(
            value_bytes(Some(ValueRef::Int(-42))).as_deref(),
            Some(&b"-42"[..])
        );
        assert_eq!(
            value_bytes(Some(ValueRef::Str("é"))).as_deref(),
            Some("é".as_bytes())
        );
        assert_eq!(value_bytes(Some(ValueRef::Null)), None);
        assert_eq!(value_bytes(None), None);
        for n in 1..50 {
            assert!((0..n as i32).contains(&partition_for(b"word", n)));
        }
    }
}
