//! Gale's built-in components (docs/contract.md §8), registered under their Gale names and Storm's
//! Java names, so Flux files written for Storm resolve:
//!
//! ```
//! use components::Builtins;
//! let registry = topology_api::Registry::with_builtins();
//! assert!(registry.resolve("org.apache.storm.testing.TestWordCounter").is_some());
//! ```
//!
//! The shell components (multi-lang) come from the `multilang` crate.

mod file_line_spout;
mod lines;
mod random;
mod sinks;
mod window;
mod words;

pub use file_line_spout::FileLineSpout;
pub use lines::DelimitedLineBolt;
pub use multilang::{ShellBolt, ShellSpout};
pub use random::{RandomSentenceSpout, TestWordSpout};
pub use sinks::{FileSinkBolt, LogInfoBolt, SleepBolt, TsvSinkBolt};
pub use window::WindowCountBolt;
pub use words::{SplitSentenceBolt, StatefulWordCount, WordCountBolt};

use topology_api::registry::Registry;

/// `Registry::with_builtins()`: a registry with Gale's built-in components.
pub trait Builtins {
    /// A registry with Gale's built-in components (docs/contract.md §8) and their Storm aliases.
    fn with_builtins() -> Registry;
}

impl Builtins for Registry {
    fn with_builtins() -> Registry {
        let mut r = Registry::empty();
        register(&mut r);
        r
    }
}

/// Registers every built-in and its aliases.
pub fn register(r: &mut Registry) {
    r.register_spout("RandomSentenceSpout", |a| {
        Ok(Box::new(RandomSentenceSpout::from_args(a)?))
    });
    r.register_spout("FileLineSpout", |a| {
        Ok(Box::new(FileLineSpout::from_args(a)?))
    });
    r.register_spout("TestWordSpout", |a| {
        Ok(Box::new(TestWordSpout::from_args(a)?))
    });
    r.register_bolt("SplitSentenceBolt", |_| Ok(Box::new(SplitSentenceBolt)));
    r.register_bolt("WordCountBolt", |_| Ok(Box::new(WordCountBolt::default())));
    r.register_stateful_bolt("StatefulWordCount", |_| Ok(StatefulWordCount));
    r.register_bolt("LogInfoBolt", |_| Ok(Box::new(LogInfoBolt::default())));
    r.register_bolt("TsvSinkBolt", |a| Ok(Box::new(TsvSinkBolt::from_args(a)?)));
    r.register_bolt("FileSinkBolt", |a| {
        Ok(Box::new(FileSinkBolt::from_args(a)?))
    });
    r.register_bolt("SleepBolt", |a| Ok(Box::new(SleepBolt::from_args(a)?)));
    r.register_bolt("ShellBolt", |a| Ok(Box::new(ShellBolt::from_args(a)?)));
    r.register_spout("ShellSpout", |a| Ok(Box::new(ShellSpout::from_args(a)?)));
    r.register_windowed_bolt("WindowCountBolt", WindowCountBolt::from_args);
    // The same, with its open windows checkpointed (a stateful topology; docs/windows.md).
    r.register_stateful_windowed_bolt("StatefulWindowCountBolt", WindowCountBolt::from_args);
    r.register_bolt("DelimitedLineBolt", |a| {
        Ok(Box::new(DelimitedLineBolt::from_args(a)?))
    });

    r.alias("org.apache.storm.testing.TestWordSpout", "TestWordSpout");
    r.alias("org.apache.storm.testing.TestWordCounter", "WordCountBolt");
    r.alias(
        "org.apache.storm.flux.examples.StatefulWordCounter",
        "StatefulWordCount",
    );
    r.alias(
        "org.apache.storm.flux.wrappers.bolts.LogInfoBolt",
        "LogInfoBolt",
    );
    r.alias(
        "org.apache.storm.starter.spout.RandomSentenceSpout",
        "RandomSentenceSpout",
    );
    r.alias(
        "org.apache.storm.flux.wrappers.bolts.FluxShellBolt",
        "ShellBolt",
    );
    r.alias("org.apache.storm.task.ShellBolt", "ShellBolt");
    r.alias(
        "org.apache.storm.flux.wrappers.spouts.FluxShellSpout",
        "ShellSpout",
    );
    r.alias("org.apache.storm.spout.ShellSpout", "ShellSpout");
    // Flux's own example classes (storm-flux-examples), for Storm's example files.
    r.alias(
        "org.apache.storm.flux.examples.TestWindowBolt",
        "WindowCountBolt",
    );
    r.alias(
        "org.apache.storm.flux.examples.TestPrintBolt",
        "LogInfoBolt",
    );
}
