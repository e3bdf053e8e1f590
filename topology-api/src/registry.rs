//! The component registry: maps a YAML `className` to a constructor.
//!
//! Gale's built-ins are registered by the `components` crate (with Storm's Java class names as
//! aliases, so Flux files written for Storm resolve). A user registers their own Rust components
//! in their own binary:
//!
//! ```
//! use topology_api::{Registry, Bolt, BoltCollector, OutputDeclarer, Tuple, Fields, values};
//! struct Upper;
//! impl Bolt for Upper {
//!     fn declare_output_fields(&self, d: &mut OutputDeclarer) { d.declare(Fields::new(["word"])) }
//!     fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
//!         if let Some(s) = t.get_str(0) { out.emit_anchored(t, values![s.to_uppercase()]) }
//!     }
//! }
//! let mut r = Registry::empty(); // or components::Builtins::with_builtins()
//! r.register_bolt("UppercaseBolt", |_args| Ok(Box::new(Upper)));
//! assert!(r.resolve("UppercaseBolt").is_some());
//! ```

use crate::checkpoint::{CHECKPOINT_SPOUT_CLASS, CheckpointSpout, StatefulBoltAdapter};
use crate::component::{Bolt, ComponentArgs, ComponentError, Spout};
use crate::state::{
    KeyValueState, MEMORY_PROVIDER, MemoryProvider, ProviderConfig, ProviderFactory, StateError,
    StateProvider, StatefulBolt, Typed,
};
use crate::windowed::{WindowedBolt, WindowedBoltAdapter, WindowedTask};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub type SpoutFactory =
    Arc<dyn Fn(&ComponentArgs) -> Result<Box<dyn Spout>, ComponentError> + Send + Sync>;
pub type BoltFactory =
    Arc<dyn Fn(&ComponentArgs) -> Result<Box<dyn Bolt>, ComponentError> + Send + Sync>;

/// A registered constructor.
#[derive(Clone)]
pub enum Factory {
    Spout(SpoutFactory),
    Bolt(BoltFactory),
}

impl Factory {
    pub fn kind(&self) -> &'static str {
        match self {
            Factory::Spout(_) => "spout",
            Factory::Bolt(_) => "bolt",
        }
    }
}

impl fmt::Debug for Factory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Factory::{}", self.kind())
    }
}

/// State providers by class name.
#[derive(Clone, Default)]
struct Providers(BTreeMap<String, ProviderFactory>);

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// className -> constructor, plus aliases (Storm's Java names), which classes are stateful
/// bolts, and the state providers (`topology.state.provider`).
#[derive(Clone, Debug)]
pub struct Registry {
    classes: BTreeMap<String, Factory>,
    aliases: BTreeMap<String, String>,
    /// Classes that read Flux `configMethods` (validation refuses them on any other class, so
    /// none is silently ignored).
    config_methods: std::collections::BTreeSet<String>,
    stateful: std::collections::BTreeSet<String>,
    windowed: std::collections::BTreeSet<String>,
    providers: Providers,
}

impl Default for Registry {
    /// What every registry has: the checkpoint spout of stateful topologies and Storm's
    /// in-memory state provider.
    fn default() -> Self {
        let mut r = Registry {
            classes: BTreeMap::new(),
            aliases: BTreeMap::new(),
            config_methods: Default::default(),
            stateful: Default::default(),
            windowed: Default::default(),
            providers: Providers::default(),
        };
        r.register_spout(CHECKPOINT_SPOUT_CLASS, |_| {
            Ok(Box::new(CheckpointSpout::default()))
        });
        for name in [MEMORY_PROVIDER, "memory"] {
            r.register_state_provider(name, |_| {
                Ok(Arc::new(MemoryProvider::default()) as Arc<dyn StateProvider>)
            });
        }
        r
    }
}

impl Registry {
    /// A registry with no components of its own (only the system ones every registry has).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Registers a stateful bolt ([`StatefulBolt`]): the runtime checkpoints its state and
    /// wires the topology's `$checkpoint` streams (docs/state.md).
    pub fn register_stateful_bolt<B, F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        B: StatefulBolt,
        F: Fn(&ComponentArgs) -> Result<B, ComponentError> + Send + Sync + 'static,
    {
        self.register_bolt(class_name, move |args| {
            let task = Typed {
                bolt: f(args)?,
                state: KeyValueState::default(),
            };
            Ok(Box::new(StatefulBoltAdapter::new(Box::new(task))))
        });
        self.stateful.insert(class_name.to_owned());
        self
    }

    /// Registers a windowed bolt (Storm's `IWindowedBolt`): the runtime keeps its windows (by
    /// count or duration, processing or event time) from its Flux `configMethods`
    /// (`withWindow`, `withTumblingWindow`, `withTimestampField`, `withLag`, ...), properties
    /// or Storm's window keys, and hands it each window ([`crate::windowed`]).
    pub fn register_windowed_bolt<B, F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        B: WindowedBolt,
        F: Fn(&ComponentArgs) -> Result<B, ComponentError> + Send + Sync + 'static,
    {
        self.register_bolt(class_name, move |args| {
            Ok(Box::new(WindowedBoltAdapter::new(
                Box::new(f(args)?),
                args,
            )?))
        });
        self.allow_config_methods(class_name);
        self.windowed.insert(class_name.to_owned());
        self
    }

    /// Registers a windowed bolt whose open windows are checkpointed state (Storm's
    /// `BaseStatefulWindowedBolt`): the topology checkpoints as one with a stateful bolt, and a
    /// window spanning a failure fires with the tuples it would have had.
    pub fn register_stateful_windowed_bolt<B, F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        B: WindowedBolt,
        F: Fn(&ComponentArgs) -> Result<B, ComponentError> + Send + Sync + 'static,
    {
        self.register_bolt(class_name, move |args| {
            let task = WindowedTask(WindowedBoltAdapter::new(Box::new(f(args)?), args)?);
            Ok(Box::new(StatefulBoltAdapter::new(Box::new(task))))
        });
        self.allow_config_methods(class_name);
        self.windowed.insert(class_name.to_owned());
        self.stateful.insert(class_name.to_owned());
        self
    }

    /// Whether a className or alias is a windowed bolt.
    pub fn is_windowed(&self, name: &str) -> bool {
        self.resolve(name)
            .is_some_and(|(canonical, _)| self.windowed.contains(canonical))
    }

    /// Whether a className or alias is a stateful bolt.
    pub fn is_stateful(&self, name: &str) -> bool {
        self.resolve(name)
            .is_some_and(|(canonical, _)| self.stateful.contains(canonical))
    }

    /// Registers a state provider under a class name (`topology.state.provider`).
    pub fn register_state_provider<F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        F: Fn(&ProviderConfig<'_>) -> Result<Arc<dyn StateProvider>, StateError>
            + Send
            + Sync
            + 'static,
    {
        self.providers.0.insert(class_name.to_owned(), Arc::new(f));
        self
    }

    /// The provider factory of a class name.
    pub fn state_provider(&self, class_name: &str) -> Option<&ProviderFactory> {
        self.providers.0.get(class_name)
    }

    /// Registered state provider class names, sorted.
    pub fn state_provider_names(&self) -> impl Iterator<Item = &str> {
        self.providers.0.keys().map(String::as_str)
    }

    pub fn register_spout<F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        F: Fn(&ComponentArgs) -> Result<Box<dyn Spout>, ComponentError> + Send + Sync + 'static,
    {
        self.classes
            .insert(class_name.to_owned(), Factory::Spout(Arc::new(f)));
        self
    }

    pub fn register_bolt<F>(&mut self, class_name: &str, f: F) -> &mut Self
    where
        F: Fn(&ComponentArgs) -> Result<Box<dyn Bolt>, ComponentError> + Send + Sync + 'static,
    {
        self.classes
            .insert(class_name.to_owned(), Factory::Bolt(Arc::new(f)));
        self
    }

    /// Makes `alias` (e.g. a Storm Java class name) resolve to the registered `class_name`.
    /// Lets `class_name` be given Flux `configMethods` (its constructor reads them from
    /// [`ComponentArgs::config_methods`] and rejects the ones it does not know).
    pub fn allow_config_methods(&mut self, class_name: &str) -> &mut Self {
        self.config_methods.insert(class_name.to_owned());
        self
    }

    /// Whether `class_name` (canonical) reads `configMethods`.
    pub fn takes_config_methods(&self, class_name: &str) -> bool {
        self.config_methods.contains(class_name)
    }

    pub fn alias(&mut self, alias: &str, class_name: &str) -> &mut Self {
        self.aliases.insert(alias.to_owned(), class_name.to_owned());
        self
    }

    /// The canonical name and constructor for a className or alias.
    pub fn resolve(&self, name: &str) -> Option<(&str, &Factory)> {
        let canonical = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.classes
            .get_key_value(canonical)
            .map(|(k, f)| (k.as_str(), f))
    }

    /// Registered class names (aliases and the system checkpoint spout not included), sorted.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.classes
            .keys()
            .map(String::as_str)
            .filter(|c| *c != CHECKPOINT_SPOUT_CLASS)
    }

    /// Every name a topology may use for a class here: registered names and aliases, sorted.
    pub fn runnable_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .classes
            .keys()
            .chain(self.aliases.keys())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Aliases and what they resolve to.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases.iter().map(|(a, c)| (a.as_str(), c.as_str()))
    }
}
