//! The validated topology: what the YAML means once every check has passed.

use serde::{Deserialize, Serialize};
use topology_api::component::{ComponentArgs, StreamDecl};
use topology_api::grouping::Grouping;
use topology_api::value::Fields;

/// Storm's config keys that Gale reads (defined beside the component API, since components
/// read them too).
pub use topology_api::keys;

/// A spout or bolt of a validated topology.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentDef {
    pub id: String,
    /// The registry's canonical name (aliases resolved).
    pub class_name: String,
    pub is_spout: bool,
    /// Executors.
    pub parallelism: u32,
    pub num_tasks: u32,
    pub args: ComponentArgs,
    /// Streams the component declares.
    pub outputs: Vec<StreamDecl>,
}

impl ComponentDef {
    pub fn output(&self, stream: &str) -> Option<&StreamDecl> {
        self.outputs.iter().find(|s| s.name == stream)
    }
}

/// A subscription: `to` receives `from`'s `stream_id` split by `grouping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDef {
    pub name: Option<String>,
    pub from: String,
    pub to: String,
    pub stream_id: String,
    pub grouping: Grouping,
}

/// A topology that passed validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub name: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub spouts: Vec<ComponentDef>,
    pub bolts: Vec<ComponentDef>,
    pub streams: Vec<StreamDef>,
}

impl Topology {
    /// Spouts, then bolts, in file order.
    pub fn components(&self) -> impl Iterator<Item = &ComponentDef> {
        self.spouts.iter().chain(self.bolts.iter())
    }

    pub fn component(&self, id: &str) -> Option<&ComponentDef> {
        self.components().find(|c| c.id == id)
    }

    pub fn component_mut(&mut self, id: &str) -> Option<&mut ComponentDef> {
        self.spouts
            .iter_mut()
            .chain(self.bolts.iter_mut())
            .find(|c| c.id == id)
    }

    /// A whole-number config value (validated to be one), or `default`.
    pub fn config_u64(&self, key: &str, default: u64) -> u64 {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(default)
    }

    pub fn config_bool(&self, key: &str) -> bool {
        self.config
            .get(key)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    /// `topology.workers`, default 1.
    pub fn workers(&self) -> u32 {
        self.config_u64(keys::WORKERS, 1).clamp(1, u32::MAX as u64) as u32
    }

    /// `topology.acker.executors`, default = workers (Storm's rule); 0 turns acking off.
    pub fn acker_executors(&self) -> u32 {
        self.config_u64(keys::ACKER_EXECUTORS, self.workers() as u64)
            .min(u32::MAX as u64) as u32
    }

    /// Subscriptions on `from`'s `stream`.
    pub fn subscribers<'a>(
        &'a self,
        from: &'a str,
        stream: &'a str,
    ) -> impl Iterator<Item = &'a StreamDef> {
        self.streams
            .iter()
            .filter(move |s| s.from == from && s.stream_id == stream)
    }

    /// Fields of `component`'s `stream`, if declared.
    pub fn stream_fields(&self, component: &str, stream: &str) -> Option<&Fields> {
        self.component(component)?.output(stream).map(|s| &s.fields)
    }

    /// Total user tasks (system components not included).
    pub fn user_tasks(&self) -> u32 {
        self.components().map(|c| c.num_tasks).sum()
    }

    /// Total user executors.
    pub fn user_executors(&self) -> u32 {
        self.components().map(|c| c.parallelism).sum()
    }
}
