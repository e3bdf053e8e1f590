//! The spout's and the bolt's configuration, from Flux's two shapes: Storm's
//! (`KafkaSpoutConfig$Builder` and `KafkaSpoutConfig` components, `setProp` config methods) and
//! Gale's short one (plain properties on the spout or bolt).

use crate::client::parse_bootstrap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use topology_api::component::{ComponentArgs, ComponentError};

/// Storm's `KafkaSpoutConfig.ProcessingGuarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Offsets are committed once their tuples are acked (contiguously); failed tuples are
    /// emitted again.
    AtLeastOnce,
    /// Offsets are committed when records are fetched, before they are emitted.
    AtMostOnce,
    /// Emitted offsets are committed on the commit period, whatever became of their tuples.
    NoGuarantee,
}

/// Storm's `FirstPollOffsetStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPoll {
    Earliest,
    Latest,
    UncommittedEarliest,
    UncommittedLatest,
}

/// Which fields a record becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Translator {
    /// Storm's `DefaultRecordTranslator`: topic, partition, offset, key, value.
    Default,
    /// Storm's examples' `OnlyValueRecordTranslator`: value.
    ValueOnly,
}

/// Storm's retry service (`KafkaSpoutRetryExponentialBackoff`) defaults: initial 0, period 2 ms,
/// at most 10 s, no limit on retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub initial: Duration,
    pub period: Duration,
    pub max_delay: Duration,
    /// None: retried for ever.
    pub max_retries: Option<u32>,
}

impl Retry {
    /// The wait before retry number `n` (1-based): initial + period x 2^(n-1), at most
    /// `max_delay`.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial
            .saturating_add(self.period.saturating_mul(factor))
            .min(self.max_delay)
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::ZERO,
            period: Duration::from_millis(2),
            max_delay: Duration::from_secs(10),
            max_retries: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpoutConfig {
    pub bootstrap: Vec<String>,
    pub topics: Vec<String>,
    /// `group.id`; when unset, `gale-<topology>-<component>`.
    pub group_id: Option<String>,
    pub first_poll: FirstPoll,
    pub guarantee: Guarantee,
    pub offset_commit_period: Duration,
    pub partition_refresh_period: Duration,
    pub max_uncommitted_offsets: u64,
    pub poll_timeout: Duration,
    pub retry: Retry,
    pub translator: Translator,
    /// `fetch.max.bytes`: at most this much per fetch request.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`: at most this much of one partition per fetch.
    pub partition_fetch_bytes: i32,
    /// Values and keys as bytes (`ByteArrayDeserializer`) instead of UTF-8 text.
    pub value_bytes: bool,
    pub key_bytes: bool,
    /// Gale's: the spout finishes once a fetch of each of its partitions came back empty (it
    /// caught up with the log) and every tuple it emitted is acked; for a bounded run (tests,
    /// benchmarks, backfills). It does not use the latest offset, which some brokers misreport.
    pub stop_when_caught_up: bool,
    /// Consumer properties Gale does not use, kept for the record (logged at open).
    pub other_props: BTreeMap<String, String>,
}

impl Default for SpoutConfig {
    fn default() -> Self {
        SpoutConfig {
            bootstrap: Vec::new(),
            topics: Vec::new(),
            group_id: None,
            first_poll: FirstPoll::UncommittedEarliest,
            guarantee: Guarantee::AtLeastOnce,
            offset_commit_period: Duration::from_secs(30),
            partition_refresh_period: Duration::from_secs(2),
            max_uncommitted_offsets: 10_000_000,
            poll_timeout: Duration::from_millis(200),
            retry: Retry::default(),
            translator: Translator::Default,
            fetch_max_bytes: 4 << 20,
            partition_fetch_bytes: 1 << 20,
            value_bytes: false,
            key_bytes: false,
            stop_when_caught_up: false,
            other_props: BTreeMap::new(),
        }
    }
}

pub const SPOUT_CONFIG_CLASS: &str = "org.apache.storm.kafka.spout.KafkaSpoutConfig";
pub const SPOUT_BUILDER_CLASS: &str = "org.apache.storm.kafka.spout.KafkaSpoutConfig$Builder";

/// The spout's properties Gale reads (Storm's builder setters, and the consumer's own names).
const SPOUT_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "bootstrapServers",
    "topics",
    "topic",
    "group.id",
    "groupId",
    "firstPollOffsetStrategy",
    "processingGuarantee",
    "offsetCommitPeriodMs",
    "offset.commit.period.ms",
    "partitionRefreshPeriodMs",
    "partition.refresh.period.ms",
    "maxUncommittedOffsets",
    "max.uncommitted.offsets",
    "pollTimeoutMs",
    "recordTranslator",
    "retry",
    "emitNullTuples",
    "stopWhenCaughtUp",
];

fn config_err(m: impl Into<String>) -> ComponentError {
    ComponentError::Config(m.into())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn millis(name: &str, v: &Value) -> Result<Duration, ComponentError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.map(Duration::from_millis).ok_or_else(|| {
        config_err(format!(
            "{name}: expected milliseconds (a whole number), found {v}"
        ))
    })
}

fn count(name: &str, v: &Value) -> Result<u64, ComponentError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n > 0).ok_or_else(|| {
        config_err(format!(
            "{name}: expected a positive whole number, found {v}"
        ))
    })
}

fn topics_of(v: &Value) -> Result<Vec<String>, ComponentError> {
    let list: Vec<String> = match v {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Array(items) => items.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    if list.is_empty() {
        return Err(config_err(format!(
            "topics: expected a topic name or a list of them, found {v}"
        )));
    }
    Ok(list)
}

/// The class name of a Flux `components` object (as the validator passes it on).
fn class_of(v: &Value) -> Option<&str> {
    v.get("className").and_then(Value::as_str)
}

impl SpoutConfig {
    /// From the spout's arguments: `KafkaSpout(KafkaSpoutConfig(Builder(...)))` as Storm's Flux
    /// files build it, or plain properties.
    pub fn from_args(args: &ComponentArgs) -> Result<SpoutConfig, ComponentError> {
        let mut cfg = SpoutConfig::default();
        match args.constructor_args.first() {
            Some(obj) if class_of(obj).is_some() => cfg.apply_storm_config(obj)?,
            Some(other) => {
                return Err(config_err(format!(
                    "KafkaSpout's constructor argument must be a `ref` to a {SPOUT_CONFIG_CLASS} \
                     component, found {other}; or give properties `bootstrap.servers` and `topics`"
                )));
            }
            None => {}
        }
        cfg.apply_properties(&args.properties, "KafkaSpout")?;
        for (name, margs) in &args.config_methods {
            cfg.apply_method(name, margs)?;
        }
        if cfg.bootstrap.is_empty() {
            return Err(config_err(
                "KafkaSpout has no brokers: set property `bootstrap.servers` (host:port, ...) \
                 or build it from a KafkaSpoutConfig$Builder",
            ));
        }
        if cfg.topics.is_empty() {
            return Err(config_err(
                "KafkaSpout has no topics: set property `topics` (a name or a list)",
            ));
        }
        Ok(cfg)
    }

    /// `KafkaSpoutConfig(builder)` or a builder itself.
    fn apply_storm_config(&mut self, obj: &Value) -> Result<(), ComponentError> {
        let class = class_of(obj).unwrap_or_default();
        let builder = if class == SPOUT_CONFIG_CLASS {
            match obj
                .get("constructorArgs")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                Some(b) if class_of(b) == Some(SPOUT_BUILDER_CLASS) => b,
                _ => {
                    return Err(config_err(format!(
                        "{SPOUT_CONFIG_CLASS} takes one constructor argument: a `ref` to a \
                         {SPOUT_BUILDER_CLASS} component"
                    )));
                }
            }
        } else if class == SPOUT_BUILDER_CLASS {
            obj
        } else {
            return Err(config_err(format!(
                "KafkaSpout is built from a {SPOUT_CONFIG_CLASS} (or its Builder), not {class}"
            )));
        };
        let cargs = builder
            .get("constructorArgs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match cargs.as_slice() {
            [servers, topics, ..] => {
                self.bootstrap = parse_bootstrap(&text(servers).unwrap_or_default());
                self.topics = topics_of(topics)?;
            }
            _ => {
                return Err(config_err(format!(
                    "{SPOUT_BUILDER_CLASS} takes constructor arguments (bootstrap servers, \
                     [topics]); found {} argument(s)",
                    cargs.len()
                )));
            }
        }
        if let Some(Value::Object(props)) = builder.get("properties") {
            let props: BTreeMap<String, Value> =
                props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            self.apply_properties(&props, SPOUT_BUILDER_CLASS)?;
        }
        if let Some(Value::Array(methods)) = builder.get("configMethods") {
            for m in methods {
                let name = m.get(0).and_then(Value::as_str).unwrap_or_default();
                let margs = m
                    .get(1)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.apply_method(name, &margs)?;
            }
        }
        Ok(())
    }

    fn apply_method(&mut self, name: &str, args: &[Value]) -> Result<(), ComponentError> {
        match (name, args) {
            ("setProp", [Value::Object(map)]) => {
                for (k, v) in map {
                    self.set_prop(k, v)?;
                }
                Ok(())
            }
            ("setProp", [k, v]) => {
                let k = text(k).unwrap_or_default();
                self.set_prop(&k, v)
            }
            ("setProp", _) => Err(config_err(
                "setProp takes a map of consumer properties, or a key and a value",
            )),
            (setter, [v]) if setter.starts_with("set") && setter.len() > 3 => {
                let mut prop = setter[3..].to_owned();
                prop[..1].make_ascii_lowercase();
                let one = BTreeMap::from([(prop, v.clone())]);
                self.apply_properties(&one, "KafkaSpout")
            }
            _ => Err(config_err(format!(
                "KafkaSpout has no config method \"{name}\" taking {} argument(s) (known: setProp, \
                 and set<Property> for the properties {})",
                args.len(),
                SPOUT_PROPERTIES.join(", ")
            ))),
        }
    }

    /// A Kafka consumer property (`setProp`).
    fn set_prop(&mut self, key: &str, v: &Value) -> Result<(), ComponentError> {
        let s = text(v).unwrap_or_default();
        match key {
            "bootstrap.servers" => self.bootstrap = parse_bootstrap(&s),
            "group.id" => self.group_id = Some(s).filter(|g| !g.is_empty()),
            "fetch.max.bytes" => self.fetch_max_bytes = count(key, v)?.min(i32::MAX as u64) as i32,
            "max.partition.fetch.bytes" => {
                self.partition_fetch_bytes = count(key, v)?.min(i32::MAX as u64) as i32
            }
            "enable.auto.commit" if s == "true" => {
                return Err(config_err(
                    "enable.auto.commit is not allowed: the spout commits offsets itself \
                     (choose processingGuarantee NO_GUARANTEE for periodic commits)",
                ));
            }
            "value.deserializer" => self.value_bytes = s.ends_with("ByteArrayDeserializer"),
            "key.deserializer" => self.key_bytes = s.ends_with("ByteArrayDeserializer"),
            _ => {
                self.other_props.insert(key.to_owned(), s);
            }
        }
        Ok(())
    }

    fn apply_properties(
        &mut self,
        props: &BTreeMap<String, Value>,
        owner: &str,
    ) -> Result<(), ComponentError> {
        for (name, v) in props {
            match name.as_str() {
                "bootstrap.servers" | "bootstrapServers" => {
                    self.bootstrap = parse_bootstrap(&text(v).unwrap_or_default())
                }
                "topics" | "topic" => self.topics = topics_of(v)?,
                "group.id" | "groupId" => {
                    self.group_id = text(v).filter(|g| !g.is_empty());
                }
                "firstPollOffsetStrategy" => {
                    self.first_poll = match text(v).as_deref() {
                        Some("EARLIEST") => FirstPoll::Earliest,
                        Some("LATEST") => FirstPoll::Latest,
                        Some("UNCOMMITTED_EARLIEST") => FirstPoll::UncommittedEarliest,
                        Some("UNCOMMITTED_LATEST") => FirstPoll::UncommittedLatest,
                        _ => {
                            return Err(config_err(format!(
                                "firstPollOffsetStrategy: expected EARLIEST, LATEST, \
                                 UNCOMMITTED_EARLIEST or UNCOMMITTED_LATEST, found {v}"
                            )));
                        }
                    }
                }
                "processingGuarantee" => {
                    self.guarantee = match text(v).as_deref() {
                        Some("AT_LEAST_ONCE") => Guarantee::AtLeastOnce,
                        Some("AT_MOST_ONCE") => Guarantee::AtMostOnce,
                        Some("NO_GUARANTEE") => Guarantee::NoGuarantee,
                        _ => {
                            return Err(config_err(format!(
                                "processingGuarantee: expected AT_LEAST_ONCE, AT_MOST_ONCE or \
                                 NO_GUARANTEE, found {v}"
                            )));
                        }
                    }
                }
                "offsetCommitPeriodMs" | "offset.commit.period.ms" => {
                    self.offset_commit_period = millis(name, v)?
                }
                "partitionRefreshPeriodMs" | "partition.refresh.period.ms" => {
                    self.partition_refresh_period = millis(name, v)?
                }
                "maxUncommittedOffsets" | "max.uncommitted.offsets" => {
                    self.max_uncommitted_offsets = count(name, v)?
                }
                "pollTimeoutMs" => self.poll_timeout = millis(name, v)?,
                "recordTranslator" => {
                    self.translator = match v {
                        Value::String(s) if s == "value" => Translator::ValueOnly,
                        Value::String(s) if s == "default" => Translator::Default,
                        obj => match class_of(obj) {
                            Some(c) if c.ends_with("OnlyValueRecordTranslator") => {
                                Translator::ValueOnly
                            }
                            Some(c) if c.ends_with("DefaultRecordTranslator") => {
                                Translator::Default
                            }
                            _ => {
                                return Err(config_err(format!(
                                    "recordTranslator: Gale knows \"default\" (Storm's \
                                     DefaultRecordTranslator: topic, partition, offset, key, \
                                     value) and \"value\" (OnlyValueRecordTranslator); found {v}"
                                )));
                            }
                        },
                    }
                }
                "retry" => self.retry = retry_of(v)?,
                // Storm's flag for records whose translation is null; every record becomes a
                // tuple here.
                "emitNullTuples" => {}
                "stopWhenCaughtUp" => {
                    self.stop_when_caught_up = match v {
                        Value::Bool(b) => *b,
                        Value::String(s) if s == "true" || s == "false" => s == "true",
                        _ => {
                            return Err(config_err(format!(
                                "stopWhenCaughtUp: expected true or false, found {v}"
                            )));
                        }
                    }
                }
                other => {
                    return Err(config_err(format!(
                        "{owner} has no property \"{other}\" (known: {})",
                        SPOUT_PROPERTIES.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `retry: {initialDelayMs, delayPeriodMs, maxDelayMs, maxRetries}`.
fn retry_of(v: &Value) -> Result<Retry, ComponentError> {
    let Value::Object(m) = v else {
        return Err(config_err(format!(
            "retry: expected {{initialDelayMs, delayPeriodMs, maxDelayMs, maxRetries}}, found {v}"
        )));
    };
    let mut r = Retry::default();
    for (k, x) in m {
        match k.as_str() {
            "initialDelayMs" => r.initial = millis(k, x)?,
            "delayPeriodMs" => r.period = millis(k, x)?,
            "maxDelayMs" => r.max_delay = millis(k, x)?,
            "maxRetries" => {
                r.max_retries = Some(count(k, x)?.min(u32::MAX as u64) as u32);
            }
            _ => {
                return Err(config_err(format!(
                    "retry has no field \"{k}\" (known: initialDelayMs, delayPeriodMs, \
                     maxDelayMs, maxRetries)"
                )));
            }
        }
    }
    Ok(r)
}

/// Where the bolt writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicChoice {
    Fixed(String),
    /// The topic in a field, or the default when the field is missing or empty.
    Field {
        field: String,
        default: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoltConfig {
    pub bootstrap: Vec<String>,
    pub topic: TopicChoice,
    pub key_field: String,
    pub message_field: String,
    /// Storm's `fireAndForget`: ack at once, without waiting for the broker.
    pub fire_and_forget: bool,
    pub other_props: BTreeMap<String, String>,
}

const BOLT_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "bootstrapServers",
    "topic",
    "topicField",
    "keyField",
    "messageField",
    "fireAndForget",
    "async",
    "producerProperties",
    "topicSelector",
    "tupleToKafkaMapper",
];

/// Storm's `DefaultTopicSelector(topic)` / `FieldNameTopicSelector(field, default)` component,
/// or a plain topic name.
fn topic_selector(v: &Value) -> Result<TopicChoice, ComponentError> {
    let class = class_of(v).unwrap_or_default();
    let cargs = v
        .get("constructorArgs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if class.ends_with("DefaultTopicSelector") {
        if let Some(t) = cargs.first().and_then(text) {
            return Ok(TopicChoice::Fixed(t));
        }
    } else if class.ends_with("FieldNameTopicSelector") {
        if let Some(f) = cargs.first().and_then(text) {
            return Ok(TopicChoice::Field {
                field: f,
                default: cargs.get(1).and_then(text),
            });
        }
    } else if let Some(t) = text(v) {
        return Ok(TopicChoice::Fixed(t));
    }
    Err(config_err(format!(
        "topic selector: Gale knows DefaultTopicSelector(topic) and \
         FieldNameTopicSelector(field, default topic); found {v}"
    )))
}

/// Storm's `FieldNameBasedTupleToKafkaMapper(key field, message field)` component.
fn tuple_mapper(
    v: &Value,
    key_field: &mut String,
    message_field: &mut String,
) -> Result<(), ComponentError> {
    let class = class_of(v).unwrap_or_default();
    if !class.ends_with("FieldNameBasedTupleToKafkaMapper") {
        return Err(config_err(format!(
            "tuple mapper: Gale knows FieldNameBasedTupleToKafkaMapper(key field, message \
             field); found {v}"
        )));
    }
    let cargs = v
        .get("constructorArgs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let [k, m, ..] = cargs.as_slice() {
        *key_field = text(k).unwrap_or_default();
        *message_field = text(m).unwrap_or_default();
    }
    Ok(())
}

impl BoltConfig {
    pub fn from_args(args: &ComponentArgs) -> Result<BoltConfig, ComponentError> {
        let mut bootstrap = Vec::new();
        let mut topic: Option<TopicChoice> = None;
        let mut topic_field: Option<String> = None;
        let mut key_field = "key".to_owned();
        let mut message_field = "message".to_owned();
        let mut fire_and_forget = false;
        let mut other_props = BTreeMap::new();
        let mut producer_props = |m: &serde_json::Map<String, Value>,
                                  bootstrap: &mut Vec<String>| {
            for (k, v) in m {
                let s = text(v).unwrap_or_default();
                if k == "bootstrap.servers" {
                    *bootstrap = parse_bootstrap(&s);
                } else {
                    other_props.insert(k.clone(), s);
                }
            }
        };
        for (name, v) in &args.properties {
            match name.as_str() {
                "bootstrap.servers" | "bootstrapServers" => {
                    bootstrap = parse_bootstrap(&text(v).unwrap_or_default())
                }
                "topic" => topic = Some(topic_selector(v)?),
                "topicField" => topic_field = text(v),
                "keyField" => key_field = text(v).unwrap_or_default(),
                "messageField" => message_field = text(v).unwrap_or_default(),
                "fireAndForget" => fire_and_forget = v.as_bool().unwrap_or(false),
                // Gale's produce is synchronous per batch; `async` changes nothing.
                "async" => {}
                "producerProperties" | "kafkaProducerProps" => match v {
                    Value::Object(m) => producer_props(m, &mut bootstrap),
                    _ => return Err(config_err("producerProperties: expected a map")),
                },
                "topicSelector" => topic = Some(topic_selector(v)?),
                "tupleToKafkaMapper" => tuple_mapper(v, &mut key_field, &mut message_field)?,
                other => {
                    return Err(config_err(format!(
                        "KafkaBolt has no property \"{other}\" (known: {})",
                        BOLT_PROPERTIES.join(", ")
                    )));
                }
            }
        }
        for (name, margs) in &args.config_methods {
            match (name.as_str(), margs.as_slice()) {
                ("withProducerProperties", [Value::Object(m)]) => producer_props(m, &mut bootstrap),
                ("withTopicSelector", [v]) => topic = Some(topic_selector(v)?),
                ("withTupleToKafkaMapper", [v]) => {
                    tuple_mapper(v, &mut key_field, &mut message_field)?
                }
                _ => {
                    return Err(config_err(format!(
                        "KafkaBolt has no config method \"{name}\" with {} argument(s) (known: \
                         withProducerProperties(map), withTopicSelector(selector), \
                         withTupleToKafkaMapper(mapper))",
                        margs.len()
                    )));
                }
            }
        }
        if let Some(field) = topic_field {
            let default = match topic {
                Some(TopicChoice::Fixed(t)) => Some(t),
                _ => None,
            };
            topic = Some(TopicChoice::Field { field, default });
        }
        let topic = topic.ok_or_else(|| {
            config_err("KafkaBolt has no topic: set property `topic` (or `topicField`)")
        })?;
        if bootstrap.is_empty() {
            return Err(config_err(
                "KafkaBolt has no brokers: set property `bootstrap.servers` (host:port, ...)",
            ));
        }
        if message_field.is_empty() {
            return Err(config_err("KafkaBolt: messageField is empty"));
        }
        Ok(BoltConfig {
            bootstrap,
            topic,
            key_field,
            message_field,
            fire_and_forget,
            other_props,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(props: Value) -> ComponentArgs {
        ComponentArgs {
            properties: props
                .as_object()
                .expect("object")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ComponentArgs::default()
        }
    }

    #[test]
    fn storms_flux_shape_is_read() {
        let builder = json!({
            "className": SPOUT_BUILDER_CLASS,
            "constructorArgs": ["localhost:9092", ["myKafkaTopic"]],
            "properties": {
                "firstPollOffsetStrategy": "EARLIEST",
                "recordTranslator": {"className": "org.apache.storm.flux.examples.OnlyValueRecordTranslator", "constructorArgs": [], "properties": {}}
            },
            "configMethods": [["setProp", [{"key.deserializer": "org.apache.kafka.common.serialization.StringDeserializer", "group.id": "g1"}]]]
        });
        let a = ComponentArgs {
            constructor_args: vec![
                json!({"className": SPOUT_CONFIG_CLASS, "constructorArgs": [builder], "properties": {}}),
            ],
            ..ComponentArgs::default()
        };
        let c = SpoutConfig::from_args(&a).expect("config");
        assert_eq!(c.bootstrap, vec!["localhost:9092".to_owned()]);
        assert_eq!(c.topics, vec!["myKafkaTopic".to_owned()]);
        assert_eq!(c.first_poll, FirstPoll::Earliest);
        assert_eq!(c.translator, Translator::ValueOnly);
        assert_eq!(c.group_id.as_deref(), Some("g1"));
        assert_eq!(c.guarantee, Guarantee::AtLeastOnce);
    }

    #[test]
    fn the_short_shape_and_its_errors() {
        let c = SpoutConfig::from_args(&args(json!({
            "bootstrap.servers": "127.0.0.1:1, 127.0.0.1:2",
            "topics": "a,b",
            "processingGuarantee": "AT_MOST_ONCE",
            "offset.commit.period.ms": 500,
            "maxUncommittedOffsets": "100",
        })))
        .expect("config");
        assert_eq!(c.bootstrap.len(), 2);
        assert_eq!(c.topics, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(c.guarantee, Guarantee::AtMostOnce);
        assert_eq!(c.offset_commit_period, Duration::from_millis(500));
        assert_eq!(c.max_uncommitted_offsets, 100);
        let table: &[(Value, &str)] = &[
            (json!({"topics": "a"}), "no brokers"),
            (json!({"bootstrap.servers": "h:1"}), "no topics"),
            (
                json!({"bootstrap.servers": "h:1", "topics": "a", "colour": 1}),
                "no property \"colour\"",
            ),
            (
                json!({"bootstrap.servers": "h:1", "topics": "a", "firstPollOffsetStrategy": "SOON"}),
                "UNCOMMITTED_EARLIEST",
            ),
            (
                json!({"bootstrap.servers": "h:1", "topics": "a", "maxUncommittedOffsets": 0}),
                "positive",
            ),
            (json!({"bootstrap.servers": "h:1", "topics": []}), "topics"),
        ];
        for (props, want) in table {
            let e = SpoutConfig::from_args(&args(props.clone())).expect_err("refused");
            assert!(e.to_string().contains(want), "{props}: {e}");
        }
    }

    #[test]
    fn retry_delays_grow_and_stop_at_the_maximum() {
        let r = Retry::default();
        let got: Vec<u128> = (1..=5).map(|n| r.delay(n).as_millis()).collect();
        assert_eq!(got, vec![2, 4, 8, 16, 32]);
        assert_eq!(r.delay(40), Duration::from_secs(10));
    }

    #[test]
    fn bolt_config_in_both_shapes() {
        let c = BoltConfig::from_args(&args(json!({
            "bootstrap.servers": "h:1", "topic": "out", "keyField": "word", "messageField": "count"
        })))
        .expect("config");
        assert_eq!(c.topic, TopicChoice::Fixed("out".into()));
        assert_eq!(
            (c.key_field.as_str(), c.message_field.as_str()),
            ("word", "count")
        );
        let a = ComponentArgs {
            config_methods: vec![
                (
                    "withProducerProperties".into(),
                    vec![json!({"bootstrap.servers": "h:2", "acks": "1"})],
                ),
                (
                    "withTopicSelector".into(),
                    vec![
                        json!({"className": "org.apache.storm.kafka.bolt.selector.DefaultTopicSelector", "constructorArgs": ["t"]}),
                    ],
                ),
                (
                    "withTupleToKafkaMapper".into(),
                    vec![
                        json!({"className": "org.apache.storm.kafka.bolt.mapper.FieldNameBasedTupleToKafkaMapper", "constructorArgs": ["k", "m"]}),
                    ],
                ),
            ],
            ..ComponentArgs::default()
        };
        let c = BoltConfig::from_args(&a).expect("config");
        assert_eq!(c.bootstrap, vec!["h:2".to_owned()]);
        assert_eq!(c.topic, TopicChoice::Fixed("t".into()));
        assert_eq!((c.key_field.as_str(), c.message_field.as_str()), ("k", "m"));
        let e = BoltConfig::from_args(&args(json!({"bootstrap.servers": "h:1"})))
            .expect_err("no topic");
        assert!(e.to_string().contains("no topic"), "{e}");
    }
}
