//! `custom-component TOPOLOGY.yaml [KEY=VALUE]...`: runs a topology that may use `UppercaseBolt`.

use anyhow::{Context, Result, bail};
use flux::{Substitutions, load_file};
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        bail!("usage: custom-component TOPOLOGY.yaml [KEY=VALUE]...");
    };
    let mut subs = Substitutions::default();
    for kv in args {
        let (k, v) = kv
            .split_once('=')
            .context("arguments after the file are KEY=VALUE")?;
        subs.set(k, v);
    }
    let registry = custom_component::registry();
    let loaded = load_file(&PathBuf::from(&file), &registry, &subs)?;
    let summary = worker::run_local(
        loaded.topology,
        &registry,
        worker::LocalOptions {
            resources_dir: loaded.resources_dir,
            ..Default::default()
        },
    )?;
    for c in &summary.components {
        println!("{}: emitted {} executed {}", c.id, c.emitted, c.executed);
    }
    Ok(())
}
