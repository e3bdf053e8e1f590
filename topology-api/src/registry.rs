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

use crate::component::{Bolt, ComponentArgs, ComponentError, Spout};
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

/// className -> constructor, plus aliases (Storm's Java names).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    classes: BTreeMap<String, Factory>,
    aliases: BTreeMap<String, String>,
    /// Classes that read Flux `configMethods` (validation refuses them on any other class, so
    /// none is silently ignored).
    config_methods: std::collections::BTreeSet<String>,
}

impl Registry {
    /// A registry with nothing in it.
    pub fn empty() -> Self {
        Self::default()
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

    /// Registered class names (aliases not included), sorted.
    pub fn class_names(&self) -> impl Iterator<Item = &str> {
        self.classes.keys().map(String::as_str)
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
