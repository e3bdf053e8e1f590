//! Your own Rust components in your own binary.
//!
//! Write a bolt (or spout) against `topology-api`, register it under a `className` in a
//! [`Registry`] that also has Gale's built-ins, and run any topology that names it, with the same
//! local-mode runtime `gale local` uses.

use components::Builtins;
use topology_api::{Bolt, BoltCollector, Fields, OutputDeclarer, Registry, Tuple, Value, Values};

/// Upper-cases field 0 (a string) and emits it as `word`.
#[derive(Debug, Default)]
pub struct UppercaseBolt;

impl Bolt for UppercaseBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        if let Some(s) = input.get_str(0) {
            let mut v = Values::new();
            v.push(Value::from(s.to_uppercase()));
            out.emit_anchored(input, v);
        }
    }
}

/// Gale's built-ins plus this crate's components.
pub fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register_bolt("UppercaseBolt", |_args| Ok(Box::new(UppercaseBolt)));
    // Storm users may keep their Java class name in the YAML:
    r.alias("com.example.storm.UppercaseBolt", "UppercaseBolt");
    r
}
