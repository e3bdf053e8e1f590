//! The subcommands.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use flux::layout::task_layout;
use flux::{LoadError, Loaded, Substitutions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use topology_api::Registry;
use worker::{LocalOptions, RunSummary};

#[derive(Debug, Parser)]
#[command(
    name = "gale",
    version,
    about = "Gale: a Storm-style stream processing engine (Flux YAML topologies, no JVM)",
    after_help = "Examples:\n  gale local topologies/word-count.yaml --set input=book.txt --set output=counts.tsv\n  gale validate my-topology.yaml\n  gale plan topologies/word-count.yaml --supervisors 2"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a topology in this process, no ZooKeeper; ends when its input is done.
    #[command(
        after_help = "Examples:\n  gale local topologies/word-count.yaml\n  gale local topologies/word-count.yaml --set input=book.txt --set output=counts.tsv --metrics-json m.json\n  gale local my.yaml --duration 10"
    )]
    Local(LocalArgs),
    /// Parse and validate a topology; print its components, tasks and executors.
    #[command(
        after_help = "Example:\n  gale validate topologies/word-count.yaml --set input=book.txt"
    )]
    Validate(SpecArgs),
    /// Print the assignment Nimbus would compute for N empty supervisors.
    #[command(
        after_help = "Examples:\n  gale plan topologies/word-count.yaml --supervisors 2\n  gale plan topologies/word-count.yaml --supervisors 3 --slots-per-supervisor 2 --format json"
    )]
    Plan(PlanArgs),
    /// Run Nimbus: the API, leader election and the assignment loop.
    #[command(
        after_help = "Example:\n  gale nimbus --zookeeper 127.0.0.1:2181 --listen 127.0.0.1:6627"
    )]
    Nimbus(crate::cluster::NimbusDaemonArgs),
    /// Run a Supervisor with worker slots.
    #[command(
        after_help = "Example:\n  gale supervisor --zookeeper 127.0.0.1:2181 --id sup-a --ports 6700,6701"
    )]
    Supervisor(crate::cluster::SupervisorDaemonArgs),
    /// Validate a topology locally and submit it to Nimbus; prints the topology id.
    #[command(
        after_help = "Example:\n  gale submit topologies/word-count.yaml --set input=/data/book.txt --set output=/data/counts.tsv"
    )]
    Submit(crate::cluster::SubmitArgs),
    /// List running topologies.
    #[command(after_help = "Example:\n  gale list --nimbus 127.0.0.1:6627")]
    List(crate::cluster::ListArgs),
    /// Supervisors, topologies, per-component stats and every executor's placement.
    #[command(after_help = "Examples:\n  gale status\n  gale status word-count --format json")]
    Status(crate::cluster::StatusArgs),
    /// Deactivate, wait, then remove a topology (Storm's kill).
    #[command(after_help = "Example:\n  gale kill word-count -w 5")]
    Kill(crate::cluster::KillArgs),
    /// Resume a deactivated topology's spouts.
    #[command(after_help = "Example:\n  gale activate word-count")]
    Activate(crate::cluster::NameArgs),
    /// Pause a topology's spouts.
    #[command(after_help = "Example:\n  gale deactivate word-count")]
    Deactivate(crate::cluster::NameArgs),
    /// Re-spread a topology over the cluster, optionally with new worker and executor counts.
    #[command(after_help = "Example:\n  gale rebalance word-count -w 2 -n 3 -e split=4")]
    Rebalance(crate::cluster::RebalanceArgs),
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The topology YAML file (Storm Flux format).
    pub file: PathBuf,
    /// Substitute ${KEY} with VALUE (repeatable; wins over --filter).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A .properties file with values for ${key} placeholders.
    #[arg(long, value_name = "FILE.properties")]
    pub filter: Option<PathBuf>,
    /// Substitute ${ENV-NAME} with environment variables.
    #[arg(long)]
    pub env_filter: bool,
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Stop after this many seconds (then drain and clean up).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Write run metrics as JSON to this file when the run ends.
    #[arg(long, value_name = "OUT")]
    pub metrics_json: Option<PathBuf>,
    /// Where stateful bolts keep their state with the embedded store (the default provider in
    /// local mode): `<DIR>/<topology>.redb`. Run again with the same folder to resume.
    #[arg(long, value_name = "DIR", default_value = "gale-state")]
    pub state_dir: PathBuf,
    /// Serve the web UI for this run (docs/ui.md), at ADDR (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub ui: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// How many empty supervisors to plan for.
    #[arg(long, value_name = "N")]
    pub supervisors: usize,
    /// Worker slots (ports from 6700) per supervisor.
    #[arg(long, value_name = "M", default_value_t = 4)]
    pub slots_per_supervisor: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A user error: exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Maps an error to docs/contract.md §2's exit codes.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Unreachable>().is_some() || crate::cluster::nimbus_error_is_unreachable(e) {
        2
    } else {
        1
    }
}

/// A daemon could not be reached: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Runs one command with the components of `registry`.
pub fn run(cli: Cli, registry: Registry) -> Result<ExitCode> {
    match cli.command {
        Command::Validate(a) => validate(&a, &registry),
        Command::Plan(a) => plan(&a, &registry),
        Command::Local(a) => local(&a, &registry),
        Command::Nimbus(a) => crate::cluster::nimbus_daemon(&a, registry),
        Command::Supervisor(a) => crate::cluster::supervisor_daemon(&a, registry),
        Command::Submit(a) => crate::cluster::submit(&a, &registry),
        Command::List(a) => crate::cluster::list(&a),
        Command::Status(a) => crate::cluster::status(&a),
        Command::Kill(a) => crate::cluster::kill(&a),
        Command::Activate(a) => crate::cluster::set_active(&a, true),
        Command::Deactivate(a) => crate::cluster::set_active(&a, false),
        Command::Rebalance(a) => crate::cluster::rebalance(&a),
    }
}

pub(crate) fn substitutions(a: &SpecArgs) -> Result<Substitutions> {
    let mut subs = Substitutions {
        env_filter: a.env_filter,
        ..Default::default()
    };
    if let Some(f) = &a.filter {
        subs.vars = flux::read_filter(f)?;
    }
    for kv in &a.set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(UserError(format!(
                "--set {kv}: expected KEY=VALUE, e.g. --set input=book.txt"
            ))
            .into());
        };
        subs.set(k.trim(), v);
    }
    Ok(subs)
}

pub(crate) fn load(a: &SpecArgs, registry: &Registry) -> Result<Loaded> {
    let subs = substitutions(a)?;
    match flux::load_file(&a.file, registry, &subs) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("{}:{}:{}: warning: {}", w.file, w.line, w.col, w.message);
            }
            Ok(l)
        }
        Err(LoadError::Invalid(errs)) => {
            // Every problem on its own line, FILE:LINE:COL: message.
            Err(UserError(errs.to_string()).into())
        }
        Err(e) => Err(e.into()),
    }
}

fn validate(a: &SpecArgs, registry: &Registry) -> Result<ExitCode> {
    let l = load(a, registry)?;
    let t = &l.topology;
    let layout = task_layout(t, t.acker_executors());
    println!("{}: topology \"{}\" is valid", a.file.display(), t.name);
    println!(
        "  workers: {}, ackers: {}",
        t.workers(),
        t.acker_executors()
    );
    println!(
        "  {:<24} {:<6} {:<22} {:>9} {:>6}  tasks",
        "component", "type", "class", "executors", "tasks"
    );
    for c in &layout {
        let class = t
            .component(&c.id)
            .map(|d| d.class_name.as_str())
            .unwrap_or("(system)");
        let last = c.first_task + c.num_tasks - 1;
        println!(
            "  {:<24} {:<6} {:<22} {:>9} {:>6}  {}-{}",
            c.id,
            c.kind.as_str(),
            class,
            c.executors.len(),
            c.num_tasks,
            c.first_task,
            last
        );
    }
    for s in &t.streams {
        println!(
            "  stream {} -> {} ({}, stream \"{}\")",
            s.from, s.to, s.grouping, s.stream_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn plan(a: &PlanArgs, registry: &Registry) -> Result<ExitCode> {
    if a.supervisors == 0 || a.slots_per_supervisor == 0 {
        return Err(UserError(
            "--supervisors and --slots-per-supervisor must be at least 1".into(),
        )
        .into());
    }
    let l = load(&a.spec, registry)?;
    let view = nimbus::view::plan(&l.topology, a.supervisors, a.slots_per_supervisor);
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Format::Text => {
            let t = &view.topologies[0];
            println!(
                "Topology {}: {} workers, {} executors, {} tasks ({} supervisors x {} slots)",
                t.name, t.workers, t.executors, t.tasks, a.supervisors, a.slots_per_supervisor
            );
            println!(
                "  {:<24} {:>9}  {:<12} {:>5}",
                "component", "tasks", "supervisor", "port"
            );
            for r in &t.assignment {
                let tasks = format!("[{}-{}]", r.task_start, r.task_end);
                println!(
                    "  {:<24} {:>9}  {:<12} {:>5}",
                    r.component, tasks, r.supervisor, r.port
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn local(a: &LocalArgs, registry: &Registry) -> Result<ExitCode> {
    let mut l = load(&a.spec, registry)?;
    if l.topology
        .component(topology_api::checkpoint::CHECKPOINT_COMPONENT)
        .is_some()
    {
        local_state_defaults(&mut l.topology.config, &a.state_dir);
    }
    run_local_and_report(
        l,
        registry,
        a.duration,
        a.metrics_json.as_deref(),
        a.ui.as_deref(),
    )
}

/// Local mode keeps state in the embedded store under `--state-dir` unless the topology names
/// a provider (docs/state.md).
fn local_state_defaults(config: &mut serde_json::Map<String, serde_json::Value>, dir: &Path) {
    use topology_api::keys;
    config
        .entry(keys::STATE_PROVIDER)
        .or_insert_with(|| state_redb::NAME.into());
    config
        .entry(keys::STATE_DIR)
        .or_insert_with(|| dir.display().to_string().into());
}

/// How long a run may take to stop after the first Ctrl-C before Gale leaves anyway.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs a loaded topology in local mode with Ctrl-C handling, progress and the summary; shared with
/// binaries that register their own components (see `examples/`).
pub fn run_local_and_report(
    l: Loaded,
    registry: &Registry,
    duration: Option<f64>,
    metrics_json: Option<&Path>,
    ui: Option<&str>,
) -> Result<ExitCode> {
    let ui_view = match ui {
        Some(addr) => {
            let view: crate::local_ui::Shared = Arc::new(std::sync::Mutex::new(
                crate::local_ui::initial_view(&l.topology),
            ));
            let at = crate::local_ui::serve(addr, view.clone())?;
            eprintln!("Web UI of this run: http://{at}/");
            Some(view)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicUsize::new(0));
    {
        let stop = stop.clone();
        let presses = presses.clone();
        // First Ctrl-C drains and cleans up; a second one leaves at once. A run that has not
        // stopped 5 s after the first (a spout blocked on its input, say a FIFO with no writer)
        // is left anyway: the first Ctrl-C always ends it.
        let _ = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) > 0 {
                std::process::exit(130);
            }
            eprintln!("\nStopping: draining in-flight tuples (Ctrl-C again to quit now)");
            stop.store(true, Ordering::SeqCst);
            std::thread::spawn(|| {
                std::thread::sleep(STOP_GRACE);
                eprintln!(
                    "did not stop within {} s: a component is blocked (a spout waiting for its input?); quitting without its results",
                    STOP_GRACE.as_secs()
                );
                std::process::exit(130);
            });
        });
    }
    let duration = match duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            return Err(UserError(format!(
                "--duration {d}: expected a positive number of seconds"
            ))
            .into());
        }
        d => d.map(Duration::from_secs_f64),
    };
    let tty = std::io::stderr().is_terminal();
    let progress = progress_fn(tty, ui_view);
    let name = l.topology.name.clone();
    let summary = worker::run_local(
        l.topology,
        registry,
        LocalOptions {
            duration,
            stop,
            progress,
            resources_dir: l.resources_dir,
            process_start_us: Some(crate::process_start_us()),
        },
    )
    .with_context(|| format!("topology \"{name}\" could not start"))?;
    if tty {
        eprintln!();
    }
    print_summary(&summary);
    if let Some(p) = metrics_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(p, json + "\n")
            .with_context(|| format!("cannot write --metrics-json file {}", p.display()))?;
    }
    if summary.ended == "failed" {
        return Err(UserError(format!(
            "topology \"{}\" failed: {}",
            summary.topology,
            summary
                .errors
                .iter()
                .rev()
                .find(|e| e.fatal)
                .map(|e| format!(
                    "component \"{}\" task {}: {}",
                    e.component, e.task, e.message
                ))
                .unwrap_or_default()
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// What runs about once a second: the progress line on a terminal, and the web UI's status.
fn progress_fn(tty: bool, ui_view: Option<crate::local_ui::Shared>) -> Option<worker::ProgressFn> {
    (tty || ui_view.is_some()).then(|| {
        Box::new(move |p: &worker::Progress| {
            if let Some(v) = &ui_view {
                crate::local_ui::update(v, p);
            }
            if tty {
                eprint!(
                    "\r  {:>6.1}s  emitted {:>12}  executed {:>12}",
                    p.elapsed.as_secs_f64(),
                    p.emitted,
                    p.executed
                );
                let _ = std::io::stderr().flush();
            }
        }) as worker::ProgressFn
    })
}

fn print_summary(s: &RunSummary) {
    println!(
        "Topology \"{}\" {} after {:.3}s",
        s.topology, s.ended, s.elapsed_secs
    );
    println!(
        "  {:<20} {:<6} {:>5} {:>12} {:>12} {:>12} {:>8} {:>14}",
        "component", "type", "exec", "emitted", "executed", "acked", "failed", "tuples/s"
    );
    for c in &s.components {
        println!(
            "  {:<20} {:<6} {:>5} {:>12} {:>12} {:>12} {:>8} {:>14.0}",
            c.id, c.kind, c.executors, c.emitted, c.executed, c.acked, c.failed, c.throughput
        );
    }
    if let Some(ms) = s.start_to_first_tuple_ms {
        println!("  first tuple processed {ms:.1} ms after gale started");
    }
    if let Some(l) = &s.latency {
        println!(
            "  end-to-end latency over {} tuples: p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms, max {:.3} ms",
            l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    for c in s
        .components
        .iter()
        .filter(|c| c.complete_latency_ms.is_some())
    {
        let pct = c
            .complete_latency
            .as_ref()
            .map(|l| format!(", p50 {:.3} ms, p99 {:.3} ms", l.p50_ms, l.p99_ms))
            .unwrap_or_default();
        println!(
            "  {}: mean complete latency {:.3} ms{pct}",
            c.id,
            c.complete_latency_ms.unwrap_or_default()
        );
    }
    if s.error_count > 0 {
        println!("  {} component error(s); last ones:", s.error_count);
        for e in s.errors.iter().rev().take(5) {
            println!("    {} task {}: {}", e.component, e.task, e.message);
        }
    }
}
