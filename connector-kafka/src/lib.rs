//! Gale's Kafka connector: Storm's `KafkaSpout` and `KafkaBolt` (docs/kafka.md), in a crate of
//! its own so only it links a Kafka client.
//!
//! The client ([`client::KafkaClient`]) is a small blocking one over `kafka-protocol`'s codecs,
//! which are generated from Kafka's own message schemas.

pub mod bolt;
pub mod client;
pub mod config;
pub mod spout;

pub use bolt::KafkaBolt;
pub use client::{KafkaClient, KafkaError};
pub use spout::KafkaSpout;
use topology_api::Registry;

/// Storm's class names.
pub const SPOUT_CLASS: &str = "org.apache.storm.kafka.spout.KafkaSpout";
pub const BOLT_CLASS: &str = "org.apache.storm.kafka.bolt.KafkaBolt";

/// Registers `KafkaSpout` and `KafkaBolt` (short names, and Storm's class names as aliases).
pub fn register(registry: &mut Registry) {
    registry
        .register_spout("KafkaSpout", |args| {
            Ok(Box::new(KafkaSpout::from_args(args)?))
        })
        .register_bolt("KafkaBolt", |args| {
            Ok(Box::new(KafkaBolt::from_args(args)?))
        })
        .allow_config_methods("KafkaSpout")
        .allow_config_methods("KafkaBolt")
        .alias(SPOUT_CLASS, "KafkaSpout")
        .alias(BOLT_CLASS, "KafkaBolt");
}
