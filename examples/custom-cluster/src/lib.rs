//! Your own Rust components on a Gale cluster.
//!
//! Storm users ship their bolts in a jar; a Gale user builds one binary that registers them and
//! runs every `gale` command with that registry ([`gale_cli::main_with`]). Started as
//! `custom-cluster nimbus`, `custom-cluster supervisor ...` and `custom-cluster submit t.yaml`,
//! its supervisors advertise `ReverseWordBolt` in ZooKeeper and Nimbus places topologies that use
//! it only on them. The stock `gale nimbus` and its supervisors reject such a topology, naming
//! the class.

use components::Builtins;
use topology_api::{Bolt, BoltCollector, Fields, OutputDeclarer, Registry, Tuple, ValueRef};

/// Reverses field 0 (a string) character by character and emits it as `word`.
#[derive(Debug, Default)]
pub struct ReverseWordBolt {
    buf: String,
}

impl Bolt for ReverseWordBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        if let Some(s) = input.get_str(0) {
            self.buf.clear();
            self.buf.extend(s.chars().rev());
            out.emit_refs_anchored(input, &[ValueRef::Str(&self.buf)]);
        }
    }
}

/// Gale's built-ins plus this binary's components.
pub fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register_bolt("ReverseWordBolt", |_args| {
        Ok(Box::new(ReverseWordBolt::default()))
    });
    // Storm users may keep a Java class name in their YAML:
    r.alias("com.example.storm.ReverseWordBolt", "ReverseWordBolt");
    r
}
