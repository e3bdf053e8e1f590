//! A small blocking Kafka client: the requests the spout and the bolt need, over
//! `kafka-protocol`'s generated codecs.
//!
//! - One TCP connection per broker, opened lazily; every connection starts with ApiVersions, and
//!   each request goes at the highest version both sides know, capped where newer versions need
//!   what Gale does not use (topic ids in Fetch from v13, grouped OffsetFetch from v8).
//! - Partition leaders and the group coordinator are looked up in metadata and looked up again
//!   after an error that says they moved.
//! - Record batches are Kafka's v2 format; gzip and snappy batches are read, others are refused
//!   with an error that names the codec.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
    create_topics_request::CreatableTopic,
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error(
        "cannot reach Kafka broker {addr}: {source} (is it running, and is bootstrap.servers right?)"
    )]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to Kafka broker {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("Kafka broker {addr} sent what cannot be read: {message}")]
    Protocol { addr: String, message: String },
    #[error(
        "Kafka broker {addr} does not support {api} at a version Gale speaks ({ours}); theirs: {theirs}"
    )]
    Unsupported {
        addr: String,
        api: &'static str,
        ours: String,
        theirs: String,
    },
    #[error("Kafka answered {what} with {code:?}")]
    Broker {
        what: String,
        code: kafka_protocol::error::ResponseError,
    },
    #[error("Kafka has no topic \"{0}\" (create it first, or check the name)")]
    UnknownTopic(String),
    #[error("Kafka has no leader for {topic}/{partition} now")]
    NoLeader { topic: String, partition: i32 },
    #[error("bootstrap.servers is empty: name at least one broker as host:port")]
    NoBootstrap,
}

impl KafkaError {
    /// Worth trying again after a metadata refresh (a moved leader, a broker restart).
    pub fn is_retriable(&self) -> bool {
        match self {
            KafkaError::Connect { .. } | KafkaError::Io { .. } | KafkaError::NoLeader { .. } => {
                true
            }
            KafkaError::Broker { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    fn broker(what: impl Into<String>, code: i16) -> Option<KafkaError> {
        code.err().map(|code| KafkaError::Broker {
            what: what.into(),
            code,
        })
    }
}

/// One record read from a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// What one fetch returned for one partition.
#[derive(Clone, Debug, Default)]
pub struct PartitionFetch {
    pub records: Vec<Fetched>,
    /// The broker's high watermark (for lag).
    pub high_watermark: i64,
    /// The next offset to fetch: after the last record returned, or the asked offset when none.
    pub next_offset: i64,
}

/// A committed offset, with the metadata it was committed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub metadata: String,
}

/// ListOffsets timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// Highest versions Gale sends (see the module docs).
const FETCH_MAX: i16 = 12;
const OFFSET_FETCH_MAX: i16 = 7;
const FIND_COORDINATOR_MAX: i16 = 3;
const METADATA_MAX: i16 = 12;
const PRODUCE_MAX: i16 = 9;
const LIST_OFFSETS_MAX: i16 = 7;
const OFFSET_COMMIT_MAX: i16 = 8;
const CREATE_TOPICS_MAX: i16 = 7;
/// Largest response Gale reads (a guard against a wrong port answering garbage).
const MAX_RESPONSE: usize = 256 << 20;

struct Connection {
    addr: String,
    stream: TcpStream,
    correlation: i32,
    client_id: StrBytes,
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    fn open(addr: &str, client_id: &str, timeout: Duration) -> Result<Connection, KafkaError> {
        let connect_err = |source| KafkaError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the name resolves to no address",
                ))
            })?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .map_err(connect_err)?;
        let mut c = Connection {
            addr: addr.to_owned(),
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id.to_owned()),
            versions: HashMap::new(),
        };
        // v0: every broker answers it.
        let r = c.call(&ApiVersionsRequest::default(), 0)?;
        if let Some(e) = KafkaError::broker("ApiVersions", r.error_code) {
            return Err(e);
        }
        c.versions = r
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(c)
    }

    /// The version to send `R` at: the highest both know, at most `cap`.
    fn version<R: Request>(&self, api: &'static str, cap: i16) -> Result<i16, KafkaError> {
        let ours = R::VERSIONS;
        let (bmin, bmax) = self.versions.get(&R::KEY).copied().unwrap_or((0, -1));
        let v = cap.min(ours.max).min(bmax);
        if v < ours.min.max(bmin) {
            return Err(KafkaError::Unsupported {
                addr: self.addr.clone(),
                api,
                ours: format!("{}..={}", ours.min, cap.min(ours.max)),
                theirs: if bmax < 0 {
                    "none".into()
                } else {
                    format!("{bmin}..={bmax}")
                },
            });
        }
        Ok(v)
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, KafkaError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::with_capacity(256);
        body.put_i32(0);
        let enc = header
            .encode(&mut body, R::header_version(version))
            .and_then(|_| req.encode(&mut body, version));
        if let Err(e) = enc {
            return Err(self.protocol(format!("encoding a request: {e}")));
        }
        let len = (body.len() - 4) as i32;
        body[..4].copy_from_slice(&len.to_be_bytes());
        let io = |addr: &str, source| KafkaError::Io {
            addr: addr.to_owned(),
            source,
        };
        self.stream
            .write_all(&body)
            .map_err(|e| io(&self.addr, e))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| io(&self.addr, e))?;
        let len = i32::from_be_bytes(len);
        if len < 0 || len as usize > MAX_RESPONSE {
            return Err(self.protocol(format!("a response of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| io(&self.addr, e))?;
        let mut buf = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("a response header: {e}")))?;
        if rh.correlation_id != self.correlation {
            return Err(self.protocol(format!(
                "correlation id {} where {} was expected",
                rh.correlation_id, self.correlation
            )));
        }
        R::Response::decode(&mut buf, version)
            .map_err(|e| self.protocol(format!("a response to API {}: {e}", R::KEY)))
    }

    fn protocol(&self, message: String) -> KafkaError {
        KafkaError::Protocol {
            addr: self.addr.clone(),
            message,
        }
    }
}

/// A client of one Kafka cluster.
pub struct KafkaClient {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    brokers: BTreeMap<i32, String>,
    conns: HashMap<i32, Connection>,
    /// A connection to a bootstrap server, before the cluster's node ids are known.
    boot: Option<Connection>,
    leaders: HashMap<(String, i32), i32>,
    partitions: BTreeMap<String, Vec<i32>>,
    coordinators: HashMap<String, i32>,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("bootstrap", &self.bootstrap)
            .field("brokers", &self.brokers)
            .finish()
    }
}

fn topic_name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

/// `host:port` list from a `bootstrap.servers` value.
pub fn parse_bootstrap(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

impl KafkaClient {
    pub fn new(bootstrap: Vec<String>, client_id: &str, timeout: Duration) -> Self {
        KafkaClient {
            bootstrap,
            client_id: client_id.to_owned(),
            timeout,
            brokers: BTreeMap::new(),
            conns: HashMap::new(),
            boot: None,
            leaders: HashMap::new(),
            partitions: BTreeMap::new(),
            coordinators: HashMap::new(),
        }
    }

    fn any_conn(&mut self) -> Result<&mut Connection, KafkaError> {
        if let Some(&id) = self.conns.keys().next() {
            return Ok(self.conns.get_mut(&id).expect("present"));
        }
        if self.boot.is_none() {
            if self.bootstrap.is_empty() {
                return Err(KafkaError::NoBootstrap);
            }
            let mut last = None;
            for addr in self.bootstrap.clone() {
                match Connection::open(&addr, &self.client_id, self.timeout) {
                    Ok(c) => {
                        self.boot = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.boot.is_none() {
                return Err(last.expect("one address tried"));
            }
        }
        Ok(self.boot.as_mut().expect("opened"))
    }

    fn conn(&mut self, node: i32) -> Result<&mut Connection, KafkaError> {
        if !self.conns.contains_key(&node) {
            let addr = match self.brokers.get(&node) {
                Some(a) => a.clone(),
                None => {
                    self.refresh_metadata(&[])?;
                    self.brokers
                        .get(&node)
                        .cloned()
                        .ok_or_else(|| KafkaError::Protocol {
                            addr: self.bootstrap.join(","),
                            message: format!("no broker {node} in the cluster's metadata"),
                        })?
                }
            };
            let c = Connection::open(&addr, &self.client_id, self.timeout)?;
            self.conns.insert(node, c);
        }
        Ok(self.conns.get_mut(&node).expect("opened"))
    }

    /// Forgets a broken connection (and the leaders, which may have moved with it).
    fn drop_conn(&mut self, node: Option<i32>) {
        match node {
            Some(n) => {
                self.conns.remove(&n);
            }
            None => self.boot = None,
        }
        self.leaders.clear();
        self.coordinators.clear();
    }

    /// Sends `req` to broker `node` at the version both know (at most `cap`); a connection
    /// that failed is dropped (with the leaders, which may have moved).
    fn call_node<R: Request>(
        &mut self,
        node: i32,
        api: &'static str,
        cap: i16,
        req: &R,
    ) -> Result<R::Response, KafkaError> {
        let r = {
            let c = self.conn(node)?;
            let v = c.version::<R>(api, cap)?;
            c.call(req, v)
        };
        if r.is_err() {
            self.drop_conn(Some(node));
        }
        r
    }

    /// Reads the cluster's brokers and the partitions and leaders of `topics` (all topics when
    /// empty).
    pub fn refresh_metadata(&mut self, topics: &[String]) -> Result<(), KafkaError> {
        let req = MetadataRequest::default()
            .with_topics(if topics.is_empty() {
                None
            } else {
                Some(
                    topics
                        .iter()
                        .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                        .collect(),
                )
            })
            .with_allow_auto_topic_creation(false);
        let r = {
            let c = self.any_conn()?;
            let v = c.version::<MetadataRequest>("Metadata", METADATA_MAX)?;
            c.call(&req, v)
        };
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                self.boot = None;
                self.conns.clear();
                return Err(e);
            }
        };
        for b in &r.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        for t in &r.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.as_str().to_owned()) else {
                continue;
            };
            if t.error_code.is_err() {
                self.partitions.remove(&name);
                continue;
            }
            let mut ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            ps.sort_unstable();
            for p in &t.partitions {
                if p.leader_id.0 >= 0 {
                    self.leaders
                        .insert((name.clone(), p.partition_index), p.leader_id.0);
                }
            }
            self.partitions.insert(name, ps);
        }
        Ok(())
    }

    /// The partitions of `topic` (from fresh metadata).
    pub fn partitions(&mut self, topic: &str) -> Result<Vec<i32>, KafkaError> {
        self.refresh_metadata(&[topic.to_owned()])?;
        self.partitions
            .get(topic)
            .cloned()
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_owned()))
    }

    fn leader(&mut self, topic: &str, partition: i32) -> Result<i32, KafkaError> {
        let key = (topic.to_owned(), partition);
        if let Some(&l) = self.leaders.get(&key) {
            return Ok(l);
        }
        self.refresh_metadata(&[topic.to_owned()])?;
        if !self.partitions.contains_key(topic) {
            return Err(KafkaError::UnknownTopic(topic.to_owned()));
        }
        self.leaders
            .get(&key)
            .copied()
            .ok_or_else(|| KafkaError::NoLeader {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// Creates a topic (replication factor 1 when `replication` is 0 or less: the broker's
    /// default is not asked for, for brokers that lack it); an existing topic is not an error.
    pub fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication: i16,
    ) -> Result<(), KafkaError> {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(topic))
                    .with_num_partitions(partitions)
                    .with_replication_factor(replication.max(1)),
            ])
            .with_timeout_ms(self.timeout.as_millis() as i32);
        let c = self.any_conn()?;
        let v = c.version::<CreateTopicsRequest>("CreateTopics", CREATE_TOPICS_MAX)?;
        let r = c.call(&req, v)?;
        for t in r.topics {
            match t.error_code.err() {
                None | Some(kafka_protocol::error::ResponseError::TopicAlreadyExists) => {}
                Some(code) => {
                    return Err(KafkaError::Broker {
                        what: format!("creating topic {topic}"),
                        code,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads from several partitions at their offsets, grouped by leader (one request per
    /// leader): at most `max_bytes` in all and `partition_bytes` of each partition (the broker
    /// still returns a first batch larger than that whole). Waits up to `max_wait` for data.
    pub fn fetch(
        &mut self,
        wanted: &[(String, i32, i64)],
        max_wait: Duration,
        max_bytes: i32,
        partition_bytes: i32,
    ) -> Result<BTreeMap<(String, i32), PartitionFetch>, KafkaError> {
        let mut by_leader: BTreeMap<i32, Vec<&(String, i32, i64)>> = BTreeMap::new();
        for w in wanted {
            let l = self.leader(&w.0, w.1)?;
            by_leader.entry(l).or_default().push(w);
        }
        let mut out = BTreeMap::new();
        for (node, parts) in by_leader {
            let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
            for (t, p, off) in &parts {
                topics.entry(t.as_str()).or_default().push(
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*off)
                        .with_partition_max_bytes(partition_bytes),
                );
            }
            let req = FetchRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_max_wait_ms(max_wait.as_millis() as i32)
                .with_min_bytes(1)
                .with_max_bytes(max_bytes)
                .with_isolation_level(0)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let r = self.call_node(node, "Fetch", FETCH_MAX, &req)?;
            if let Some(e) = KafkaError::broker("Fetch", r.error_code) {
                return Err(e);
            }
            for t in r.responses {
                let topic = t.topic.0.as_str().to_owned();
                for p in t.partitions {
                    let asked = parts
                        .iter()
                        .find(|w| w.0 == topic && w.1 == p.partition_index)
                        .map(|w| w.2)
                        .unwrap_or(0);
                    if let Some(e) = KafkaError::broker(
                        format!("Fetch of {topic}/{}", p.partition_index),
                        p.error_code,
                    ) {
                        if e.is_retriable() {
                            self.leaders.remove(&(topic.clone(), p.partition_index));
                        }
                        return Err(e);
                    }
                    let records = match p.records {
                        Some(bytes) => decode_records(bytes, asked).map_err(|message| {
                            KafkaError::Protocol {
                                addr: self.brokers.get(&node).cloned().unwrap_or_default(),
                                message,
                            }
                        })?,
                        None => Vec::new(),
                    };
                    let next_offset = records.last().map_or(asked, |r| r.offset + 1);
                    out.insert(
                        (topic.clone(), p.partition_index),
                        PartitionFetch {
                            records,
                            high_watermark: p.high_watermark,
                            next_offset,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// The earliest ([`EARLIEST`]) or latest ([`LATEST`]) offset of each partition.
    pub fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        which: i64,
    ) -> Result<BTreeMap<(String, i32), i64>, KafkaError> {
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (t, p) in partitions {
            let l = self.leader(t, *p)?;
            by_leader
                .entry(l)
                .or_default()
                .entry(t.as_str())
                .or_default()
                .push(*p);
        }
        let mut out = BTreeMap::new();
        for (node, topics) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(p)
                                                .with_current_leader_epoch(-1)
                                                .with_timestamp(which)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let r = self.call_node(node, "ListOffsets", LIST_OFFSETS_MAX, &req)?;
            for t in r.topics {
                for p in t.partitions {
                    if let Some(e) = KafkaError::broker(
                        format!("ListOffsets of {}/{}", t.name.0.as_str(), p.partition_index),
                        p.error_code,
                    ) {
                        return Err(e);
                    }
                    out.insert((t.name.0.as_str().to_owned(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }

    fn coordinator(&mut self, group: &str) -> Result<i32, KafkaError> {
        if let Some(&n) = self.coordinators.get(group) {
            return Ok(n);
        }
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0);
        let r = {
            let c = self.any_conn()?;
            let v = c.version::<FindCoordinatorRequest>("FindCoordinator", FIND_COORDINATOR_MAX)?;
            c.call(&req, v)?
        };
        if let Some(e) =
            KafkaError::broker(format!("FindCoordinator of group {group}"), r.error_code)
        {
            return Err(e);
        }
        let node = r.node_id.0;
        self.brokers
            .entry(node)
            .or_insert_with(|| format!("{}:{}", r.host.as_str(), r.port));
        self.coordinators.insert(group.to_owned(), node);
        Ok(node)
    }

    /// Commits offsets for `group` as a consumer outside group membership (generation -1, no
    /// member id), as a manually assigned consumer does.
    pub fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in offsets {
            topics.entry(t.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.to_owned()))),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let node = self.coordinator(group)?;
        let r = self.call_node(node, "OffsetCommit", OFFSET_COMMIT_MAX, &req)?;
        for t in r.topics {
            for p in t.partitions {
                if let Some(e) = KafkaError::broker(
                    format!(
                        "OffsetCommit of {}/{} for group {group}",
                        t.name.0.as_str(),
                        p.partition_index
                    ),
                    p.error_code,
                ) {
                    if e.is_retriable() {
                        self.coordinators.remove(group);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The offsets `group` committed for `partitions` (absent: none committed).
    pub fn committed_offsets(
        &mut self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), Committed>, KafkaError> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_topics(Some(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ));
        let node = self.coordinator(group)?;
        let r = self.call_node(node, "OffsetFetch", OFFSET_FETCH_MAX, &req)?;
        if let Some(e) = KafkaError::broker(format!("OffsetFetch for group {group}"), r.error_code)
        {
            return Err(e);
        }
        let mut out = BTreeMap::new();
        for t in r.topics {
            for p in t.partitions {
                if p.error_code.is_err() || p.committed_offset < 0 {
                    continue;
                }
                out.insert(
                    (t.name.0.as_str().to_owned(), p.partition_index),
                    Committed {
                        offset: p.committed_offset,
                        metadata: p
                            .metadata
                            .as_ref()
                            .map(|m| m.as_str().to_owned())
                            .unwrap_or_default(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Writes records to one partition and waits for every in-sync replica (acks=all). Returns
    /// the offset of the first record.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[(Option<Bytes>, Option<Bytes>)],
        timestamp_ms: i64,
    ) -> Result<i64, KafkaError> {
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence is constant;
                // this makes the batch's base sequence -1 (none), as a producer without
                // idempotence sends (Kafka takes one batch per partition in a produce request).
                sequence: i as i32 - 1,
                timestamp: timestamp_ms,
                key: k.clone(),
                value: v.clone(),
                headers: indexmap::IndexMap::new(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| KafkaError::Protocol {
            addr: String::new(),
            message: format!("encoding records: {e}"),
        })?;
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(self.timeout.as_millis() as i32)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.freeze())),
                    ]),
            ]);
        let node = self.leader(topic, partition)?;
        let r = self.call_node(node, "Produce", PRODUCE_MAX, &req)?;
        let answer = r
            .responses
            .into_iter()
            .flat_map(|t| t.partition_responses)
            .find(|p| p.index == partition);
        if let Some(p) = answer {
            if let Some(e) =
                KafkaError::broker(format!("Produce to {topic}/{partition}"), p.error_code)
            {
                if e.is_retriable() {
                    self.leaders.remove(&(topic.to_owned(), partition));
                }
                return Err(e);
            }
            return Ok(p.base_offset);
        }
        Err(KafkaError::Protocol {
            addr: self.brokers.get(&node).cloned().unwrap_or_default(),
            message: format!("no answer for {topic}/{partition} in a Produce response"),
        })
    }
}

/// The records of a fetch response at or after `from`: whole batches only (a broker may cut the
/// last one short), control records (transaction markers) left out.
pub fn decode_records(mut bytes: Bytes, from: i64) -> Result<Vec<Fetched>, String> {
    let mut out = Vec::new();
    // A batch: base offset (8), length (4), then `length` bytes.
    while bytes.len() >= 12 {
        let len = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if len < 0 {
            return Err(format!("a record batch of length {len}"));
        }
        let total = 12 + len as usize;
        if bytes.len() < total {
            break;
        }
        let mut one = bytes.split_to(total);
        // Magic byte: offset 16 (after base offset, length, leader epoch).
        if one.len() > 16 && one[16] != 2 {
            return Err(format!(
                "a record batch in format v{} (Gale reads v2, Kafka's format since 0.11)",
                one[16]
            ));
        }
        let set = RecordBatchDecoder::decode(&mut one).map_err(|e| {
            let codec = if one.len() > 22 {
                match i16::from_be_bytes([one[21], one[22]]) & 7 {
                    3 => " (lz4 compression: produce with none, gzip or snappy)",
                    4 => " (zstd compression: produce with none, gzip or snappy)",
                    _ => "",
                }
            } else {
                ""
            };
            format!("a record batch: {e}{codec}")
        })?;
        for r in set.records {
            if r.control || r.offset < from {
                continue;
            }
            out.push(Fetched {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
            });
        }
    }
    let _ = bytes.remaining();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, values: &[&str]) -> BytesMut {
        let recs: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: i as i32 - 1,
                timestamp: 7,
                key: None,
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                headers: indexmap::IndexMap::new(),
            })
            .collect();
        let mut b = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut b,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        b
    }

    #[test]
    fn whole_batches_from_the_asked_offset_are_read_and_a_cut_one_is_left() {
        let mut all = batch(0, &["a", "b", "c"]);
        all.extend_from_slice(&batch(3, &["d", "e"]));
        let cut = batch(5, &["f", "g"]);
        all.extend_from_slice(&cut[..cut.len() - 3]);
        let got = decode_records(all.freeze(), 1).expect("decode");
        let values: Vec<(i64, &[u8])> = got
            .iter()
            .map(|r| (r.offset, r.value.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            values,
            vec![
                (1, &b"b"[..]),
                (2, &b"c"[..]),
                (3, &b"d"[..]),
                (4, &b"e"[..])
            ]
        );
    }

    #[test]
    fn an_old_format_or_a_bad_length_is_an_error_not_a_panic() {
        let mut b = batch(0, &["a"]);
        b[16] = 1;
        assert!(decode_records(b.freeze(), 0).unwrap_err().contains("v1"));
        let mut bad = BytesMut::from(&[0u8; 12][..]);
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_records(bad.freeze(), 0).is_err());
        // Garbage of a plausible length: an error, never a panic.
        let mut junk = BytesMut::from(&[0u8; 40][..]);
        junk[8..12].copy_from_slice(&28i32.to_be_bytes());
        junk[16] = 2;
        let _ = decode_records(junk.freeze(), 0);
    }

    #[test]
    fn bootstrap_lists_are_split_and_trimmed() {
        assert_eq!(
            parse_bootstrap(" a:1, b:2 ,,"),
            vec!["a:1".to_owned(), "b:2".to_owned()]
        );
    }
}
