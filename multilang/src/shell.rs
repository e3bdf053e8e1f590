//! `ShellBolt` and `ShellSpout`: components written in any language, spoken to over Storm's
//! multi-lang protocol.
//!
//! The subprocess runs in the topology's resources folder. Messages are JSON objects each followed
//! by a line `end`, or msgpack values when the component asks for msgpack (property `serializer`,
//! or `topology.multilang.serializer`; see [`crate::protocol`]). Gale sends the handshake
//! (`conf`, `context`, `pidDir`) and reads the `pid`; then for each input tuple it sends
//! `{"id", "comp", "stream", "task", "tuple"}` and handles `emit` (with anchors, stream, direct
//! task, and the task-id reply unless `need_task_ids` is false), `ack`, `fail`, `log`, `error`,
//! `metrics` and `sync` until the subprocess acks or fails that tuple.
//!
//! While a bolt is idle, a watchdog sends Storm's heartbeat tuple (stream `__heartbeat`, task -1)
//! every second; the subprocess answers `sync`. A subprocess that exits, writes garbage, stays
//! silent on a tuple, or leaves heartbeats unanswered longer than `topology.subprocess.timeout.secs`
//! (Storm's key; `topology.multilang.timeout.secs` too; default 30) is killed and reported with its
//! component, task and stderr tail; its tuple fails (and replays with acking on), and the next
//! tuple starts a new subprocess.

use crate::protocol::{Decoder, Serializer};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use topology_api::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector,
    TopologyContext,
};
use topology_api::tuple::{MessageId, Tuple};
use topology_api::value::{Fields, SmolStr, Value, Values};

/// How often an idle bolt's subprocess is sent a heartbeat tuple (Storm: every second).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// What a multi-lang spout or bolt is made of: constructorArgs = [command line list, output
/// fields list], and the optional property `serializer`.
struct ShellSpec {
    command: Vec<String>,
    fields: Vec<String>,
    serializer: Option<Serializer>,
}

/// Runs a multi-lang bolt: constructorArgs = [command line list, output fields list].
pub struct ShellBolt {
    spec: ShellSpec,
    ctx: Option<TopologyContext>,
    proc: Option<Proc>,
    timeout: Duration,
    next_id: u64,
    /// Tuples handed to the subprocess and not yet acked or failed by it, by the id sent.
    pending: std::collections::HashMap<String, Tuple<'static>>,
    /// Storm's `topology.shellbolt.max.pending` (default 100).
    max_pending: usize,
}

struct Proc {
    child: Arc<Mutex<Child>>,
    stdin: Arc<Mutex<ChildStdin>>,
    serializer: Serializer,
    messages: Receiver<Result<Json, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Cleared when this process is dropped: the watchdog ends.
    alive: Arc<AtomicBool>,
    /// Why the watchdog killed the process, if it did.
    killed: Arc<Mutex<Option<String>>>,
    /// When the reader thread last got a message, in ms since `epoch`.
    heard: Arc<AtomicU64>,
    epoch: Instant,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn string_list(v: Option<&Json>, what: &str) -> Result<Vec<String>, ComponentError> {
    let list = v.and_then(Json::as_array).ok_or_else(|| {
        ComponentError::Config(format!(
            "constructorArgs must be [command line list, output fields list]; the {what} list is missing"
        ))
    })?;
    list.iter()
        .map(|x| {
            x.as_str().map(str::to_owned).ok_or_else(|| {
                ComponentError::Config(format!("the {what} list must hold strings, found {x}"))
            })
        })
        .collect()
}

impl ShellSpec {
    fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let command = string_list(args.constructor_args.first(), "command line")?;
        if command.is_empty() {
            return Err(ComponentError::Config(
                "the command line list is empty".into(),
            ));
        }
        let fields = match args.constructor_args.get(1) {
            Some(v) => string_list(Some(v), "output fields")?,
            None => Vec::new(),
        };
        let serializer = match args.property_str("serializer") {
            None => None,
            Some(n) => Some(Serializer::from_name(&n).ok_or_else(|| {
                ComponentError::Config(format!("unknown serializer \"{n}\"; use json or msgpack"))
            })?),
        };
        Ok(ShellSpec {
            command,
            fields,
            serializer,
        })
    }

    /// Starts the subprocess for the component of `ctx` and does the handshake.
    fn start(&self, ctx: &TopologyContext, timeout: Duration) -> Result<Proc, String> {
        let ser = serializer(ctx, self.serializer)?;
        start_proc(&self.command, ctx, timeout, ser)
    }
}

impl ShellBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        Ok(ShellBolt {
            spec: ShellSpec::from_args(args)?,
            ctx: None,
            proc: None,
            timeout: Duration::from_secs(30),
            next_id: 0,
            pending: std::collections::HashMap::new(),
            max_pending: 100,
        })
    }

    fn start(&mut self) -> Result<Proc, String> {
        let ctx = self.ctx.as_ref().ok_or("not prepared")?;
        let p = self.spec.start(ctx, self.timeout)?;
        p.start_watchdog(ctx, &self.spec.command, self.timeout);
        Ok(p)
    }
}

/// The component's own `serializer` property, else `topology.multilang.serializer`, else JSON.
fn serializer(ctx: &TopologyContext, own: Option<Serializer>) -> Result<Serializer, String> {
    if let Some(s) = own {
        return Ok(s);
    }
    match ctx
        .config
        .get("topology.multilang.serializer")
        .and_then(Json::as_str)
    {
        None => Ok(Serializer::Json),
        Some(n) => Serializer::from_name(n).ok_or_else(|| {
            format!("unknown topology.multilang.serializer \"{n}\"; use json or msgpack")
        }),
    }
}

impl Proc {
    fn tail(&self) -> String {
        let t = lock(&self.stderr);
        t.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    fn send(&self, v: &Json) -> Result<(), String> {
        let bytes = self.serializer.encode(v);
        let mut w = lock(&self.stdin);
        w.write_all(&bytes)
            .and_then(|_| w.flush())
            .map_err(|e| format!("cannot write to the subprocess: {e}"))
    }

    /// Sends a heartbeat tuple every second, and kills the subprocess when one goes unanswered
    /// for `timeout` (the reader thread then reports the closed output).
    fn start_watchdog(&self, ctx: &TopologyContext, command: &[String], timeout: Duration) {
        let (stdin, child, alive, killed, ser) = (
            self.stdin.clone(),
            self.child.clone(),
            self.alive.clone(),
            self.killed.clone(),
            self.serializer,
        );
        let (heard, epoch) = (self.heard.clone(), self.epoch);
        let who = format!(
            "{}/{} task {}",
            ctx.topology_name, ctx.component_id, ctx.task_id
        );
        let command = command.to_vec();
        let timeout_ms = timeout.as_millis() as u64;
        let every_ms = HEARTBEAT_EVERY.as_millis() as u64;
        let _ = std::thread::Builder::new()
            .name(format!("gale-heartbeat-{}", ctx.task_id))
            .spawn(move || {
                let heartbeat = ser.encode(&json!({
                    "id": "-1", "comp": null, "stream": "__heartbeat", "task": -1, "tuple": []
                }));
                let mut last_sent = 0u64;
                // When the unanswered heartbeat was sent (ms since `epoch`).
                let mut outstanding: Option<u64> = None;
                while alive.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = epoch.elapsed().as_millis() as u64;
                    if let Some(sent) = outstanding {
                        if heard.load(Ordering::Relaxed) >= sent {
                            outstanding = None;
                        } else if now - sent >= timeout_ms {
                            let why = format!(
                                "no answer to heartbeats for {} s; the subprocess was killed",
                                timeout.as_secs()
                            );
                            tracing::error!(component = %who, ?command, "{why}");
                            *lock(&killed) = Some(why);
                            let _ = lock(&child).kill();
                            return;
                        }
                    }
                    if outstanding.is_none() && now - last_sent >= every_ms {
                        let mut w = lock(&stdin);
                        if w.write_all(&heartbeat).and_then(|_| w.flush()).is_err() {
                            return;
                        }
                        last_sent = now;
                        outstanding = Some(now);
                    }
                }
            });
    }

    fn recv(&self, timeout: Duration) -> Result<Json, String> {
        match self.messages.recv_timeout(timeout) {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("no answer within {} s", timeout.as_secs()))
            }
            Err(RecvTimeoutError::Disconnected) => Err("the subprocess is gone".into()),
        }
    }
}

/// Starts a multi-lang subprocess in the resources folder and does the handshake.
fn start_proc(
    command: &[String],
    ctx: &TopologyContext,
    timeout: Duration,
    serializer: Serializer,
) -> Result<Proc, String> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(&ctx.resources_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {:?} in {}: {e}",
                command,
                ctx.resources_dir.display()
            )
        })?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = stderr_tail(child.stderr.take().ok_or("no stderr")?);
    let epoch = Instant::now();
    let (rx, heard) = read_messages(stdout, serializer, epoch);
    let p = Proc {
        child: Arc::new(Mutex::new(child)),
        stdin: Arc::new(Mutex::new(stdin)),
        serializer,
        messages: rx,
        stderr,
        alive: Arc::new(AtomicBool::new(true)),
        killed: Arc::new(Mutex::new(None)),
        heard,
        epoch,
    };
    p.send(&handshake(ctx))?;
    match p.messages.recv_timeout(timeout) {
        Ok(Ok(m)) if m.get("pid").is_some() => Ok(p),
        Ok(Ok(m)) => Err(format!(
            "expected {{\"pid\": N}} after the handshake, got {m}"
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer to the handshake".into()),
    }
}

/// Keeps the last 20 lines the subprocess writes to stderr, for error reports.
fn stderr_tail(pipe: std::process::ChildStderr) -> Arc<Mutex<VecDeque<String>>> {
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    let tail = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() >= 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    stderr
}

/// Decodes what the subprocess writes on a thread of its own: each message (or the error that
/// ends the stream) on the channel, and when the last one came (milliseconds since `epoch`).
fn read_messages(
    stdout: std::process::ChildStdout,
    serializer: Serializer,
    epoch: Instant,
) -> (
    std::sync::mpsc::Receiver<Result<Json, String>>,
    Arc<AtomicU64>,
) {
    let (tx, rx) = channel();
    let heard = Arc::new(AtomicU64::new(0));
    let heard_w = heard.clone();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut decoder = Decoder::new(serializer);
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err("the subprocess closed its output (exited?)".into()));
                    return;
                }
                Ok(n) => decoder.feed(&chunk[..n]),
            }
            loop {
                match decoder.next_message() {
                    Ok(Some(m)) => {
                        heard_w.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                        if tx.send(Ok(m)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        }
    });
    (rx, heard)
}

/// Storm's handshake: the topology's config, a pid folder and the task's context.
fn handshake(ctx: &TopologyContext) -> Json {
    let pid_dir =
        std::env::temp_dir().join(format!("gale-pids-{}-{}", ctx.component_id, ctx.task_id));
    let _ = std::fs::create_dir_all(&pid_dir);
    let task_component: serde_json::Map<String, Json> = ctx
        .component_tasks
        .iter()
        .flat_map(|(c, ts)| {
            ts.iter()
                .map(move |t| (t.to_string(), Json::from(c.clone())))
        })
        .collect();
    json!({
        "conf": Json::Object((*ctx.config).clone()),
        "pidDir": pid_dir.display().to_string(),
        "context": {
            "task->component": task_component,
            "taskid": ctx.task_id,
            "componentid": ctx.component_id,
            "stormid": ctx.topology_name,
        }
    })
}

/// `topology.subprocess.timeout.secs` (Storm's key) or `topology.multilang.timeout.secs`, or
/// `default`.
fn multilang_timeout(ctx: &TopologyContext, default: Duration) -> Duration {
    ctx.config
        .get("topology.subprocess.timeout.secs")
        .or_else(|| ctx.config.get("topology.multilang.timeout.secs"))
        .and_then(Json::as_u64)
        .map(|t| Duration::from_secs(t.max(1)))
        .unwrap_or(default)
}

/// The fields of an `emit` message: values, stream, direct task, whether task ids are wanted.
fn parse_emit(m: &Json) -> (Values, &str, Option<u32>, bool) {
    let values: Values = m
        .get("tuple")
        .and_then(Json::as_array)
        .map(|a| a.iter().map(from_json).collect())
        .unwrap_or_default();
    let stream = m
        .get("stream")
        .and_then(Json::as_str)
        .unwrap_or(topology_api::tuple::DEFAULT_STREAM);
    let direct = m.get("task").and_then(Json::as_u64).map(|t| t as u32);
    let need_ids = m
        .get("need_task_ids")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    (values, stream, direct, need_ids)
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
    }
}

fn from_json(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => Value::Str(SmolStr::new(s)),
        Json::Array(a) => Value::List(a.iter().map(from_json).collect()),
        Json::Object(_) => Value::Str(SmolStr::new(v.to_string())),
    }
}

impl Bolt for ShellBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(self.spec.fields.iter().cloned()));
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.timeout = multilang_timeout(ctx, self.timeout);
        self.max_pending = ctx
            .config
            .get("topology.shellbolt.max.pending")
            .and_then(Json::as_u64)
            .map(|n| n.clamp(1, 1 << 20) as usize)
            .unwrap_or(self.max_pending);
        self.ctx = Some(ctx.clone());
        self.proc = Some(self.start().map_err(ComponentError::Other)?);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        // Whatever the subprocess said meanwhile, and whether it is still there.
        self.handle_available(out);
        if self.proc.is_none() {
            match self.start() {
                Ok(p) => self.proc = Some(p),
                Err(e) => {
                    out.report_error(&format!(
                        "subprocess {:?} cannot restart: {e}",
                        self.spec.command
                    ));
                    out.fail(input);
                    return;
                }
            }
        }
        self.next_id += 1;
        let id = self.next_id.to_string();
        let msg = json!({
            "id": id,
            "comp": input.source_component(),
            "stream": input.source_stream(),
            "task": input.source_task(),
            "tuple": input.values().map(|v| to_json(&v.to_value())).collect::<Vec<_>>(),
        });
        self.pending.insert(id, input.to_owned());
        let sent = self.proc.as_ref().map(|p| p.send(&msg));
        if let Some(Err(e)) = sent {
            self.lost(e, out);
            return;
        }
        // Storm's topology.shellbolt.max.pending: wait while that many tuples are out.
        while self.pending.len() >= self.max_pending && self.proc.is_some() {
            self.wait_one(out);
        }
    }

    fn wants_poll(&self) -> bool {
        true
    }

    fn poll(&mut self, out: &mut BoltCollector<'_>, end: bool) {
        self.handle_available(out);
        if end {
            while !self.pending.is_empty() && self.proc.is_some() {
                self.wait_one(out);
            }
        }
    }

    fn cleanup(&mut self) {
        self.proc = None;
    }

    fn auto_ack(&self) -> bool {
        false
    }
}

impl ShellBolt {
    /// Handles every message already received, without waiting.
    fn handle_available(&mut self, out: &mut BoltCollector<'_>) {
        loop {
            let next = match self.proc.as_ref() {
                Some(p) => p.messages.try_recv(),
                None => return,
            };
            match next {
                Ok(Ok(m)) => {
                    if let Err(e) = self.handle(m, out) {
                        self.lost(e, out);
                        return;
                    }
                }
                Ok(Err(e)) => {
                    self.lost(e, out);
                    return;
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.lost("the subprocess is gone".into(), out);
                    return;
                }
            }
        }
    }

    /// Waits for one message (the subprocess is behind): `timeout` without one while tuples are
    /// out means it hangs, and it is killed.
    fn wait_one(&mut self, out: &mut BoltCollector<'_>) {
        let timeout = self.timeout;
        let next = match self.proc.as_ref() {
            Some(p) => p.messages.recv_timeout(timeout),
            None => return,
        };
        match next {
            Ok(Ok(m)) => {
                if let Err(e) = self.handle(m, out) {
                    self.lost(e, out);
                }
            }
            Ok(Err(e)) => self.lost(e, out),
            Err(RecvTimeoutError::Timeout) => {
                self.lost(format!("no answer within {} s", timeout.as_secs()), out)
            }
            Err(RecvTimeoutError::Disconnected) => self.lost("the subprocess is gone".into(), out),
        }
    }

    /// The subprocess is unusable: report it with its stderr tail, fail every tuple it had (they
    /// replay with acking on), and drop it (killing it); the next tuple starts a new one.
    fn lost(&mut self, why: String, out: &mut BoltCollector<'_>) {
        let (tail, killed) = match self.proc.as_ref() {
            Some(p) => (p.tail(), lock(&p.killed).clone()),
            None => (String::new(), None),
        };
        let why = killed.unwrap_or(why);
        out.report_error(&format!(
            "subprocess {:?}: {why}; stderr: {tail}",
            self.spec.command
        ));
        for (_, t) in std::mem::take(&mut self.pending) {
            out.fail(&t);
        }
        self.proc = None;
    }

    /// One message from the subprocess.
    fn handle(&mut self, m: Json, out: &mut BoltCollector<'_>) -> Result<(), String> {
        let id_of = |x: &Json| {
            x.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| x.to_string())
        };
        match m.get("command").and_then(Json::as_str).unwrap_or("") {
            "emit" => {
                let (values, stream, direct, need_ids) = parse_emit(&m);
                let anchors: Vec<&Tuple> = m
                    .get("anchors")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| self.pending.get(&id_of(x)))
                            .collect()
                    })
                    .unwrap_or_default();
                let tasks = out.emit_returning_tasks(stream, &anchors, values, direct);
                if need_ids && let Some(p) = self.proc.as_ref() {
                    p.send(&Json::from(tasks))?;
                }
            }
            c @ ("ack" | "fail") => {
                let id = m.get("id").map(id_of).unwrap_or_default();
                if let Some(t) = self.pending.remove(&id) {
                    if c == "ack" {
                        out.ack(&t);
                    } else {
                        out.fail(&t);
                    }
                }
            }
            "log" => {
                let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                tracing::info!(command = ?self.spec.command, "{text}");
            }
            "error" => {
                let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                out.report_error(text);
            }
            "sync" | "metrics" => {}
            other => return Err(format!("unknown command \"{other}\" in {m}")),
        }
        Ok(())
    }
}

/// Runs a multi-lang spout: constructorArgs = [command line list, output fields list].
///
/// Each `next_tuple` sends `{"command": "next"}` and handles the spout's emits until its `sync`;
/// `ack`/`fail` send `{"command": "ack"|"fail", "id"}` and wait for `sync` too. Message ids are
/// kept as the JSON the spout gave, and handed back as such.
pub struct ShellSpout {
    spec: ShellSpec,
    ctx: Option<TopologyContext>,
    proc: Option<Proc>,
    timeout: Duration,
}

impl ShellSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        Ok(ShellSpout {
            spec: ShellSpec::from_args(args)?,
            ctx: None,
            proc: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends `msg` and handles messages until `sync`.
    fn exchange(
        &mut self,
        msg: &Json,
        mut out: Option<&mut SpoutCollector<'_>>,
    ) -> Result<(), String> {
        if self.proc.is_none() {
            let ctx = self.ctx.as_ref().ok_or("not opened")?;
            self.proc = Some(self.spec.start(ctx, self.timeout)?);
        }
        let timeout = self.timeout;
        let p = self.proc.as_mut().ok_or("no subprocess")?;
        p.send(msg)?;
        loop {
            let m = p.recv(timeout)?;
            match m.get("command").and_then(Json::as_str).unwrap_or("") {
                "sync" => return Ok(()),
                "emit" => {
                    let Some(out) = out.as_deref_mut() else {
                        return Err("emit outside next_tuple".into());
                    };
                    let (values, stream, direct, need_ids) = parse_emit(&m);
                    let id = m
                        .get("id")
                        .filter(|v| !v.is_null())
                        .map(|v| MessageId::Str(v.to_string()));
                    let tasks = out.emit_returning_tasks(stream, values, id, direct);
                    if need_ids {
                        p.send(&Json::from(tasks))?;
                    }
                }
                "log" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                    tracing::info!(command = ?self.spec.command, "{text}");
                }
                "error" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("").to_owned();
                    match out.as_deref_mut() {
                        Some(out) => out.report_error(&text),
                        None => tracing::warn!(command = ?self.spec.command, "{text}"),
                    }
                }
                "metrics" => {}
                other => return Err(format!("unknown command \"{other}\" in {m}")),
            }
        }
    }

    fn report(&mut self, e: String, out: Option<&mut SpoutCollector<'_>>) {
        let tail = self.proc.as_ref().map(Proc::tail).unwrap_or_default();
        let msg = format!("subprocess {:?}: {e}; stderr: {tail}", self.spec.command);
        match out {
            Some(o) => o.report_error(&msg),
            None => tracing::warn!("{msg}"),
        }
        // Dropping the process kills it; the next call starts a new one.
        self.proc = None;
    }

    fn id_json(id: &MessageId) -> Json {
        match id {
            MessageId::Str(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone()))
            }
            MessageId::Int(i) => Json::from(*i),
        }
    }
}

impl Spout for ShellSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(self.spec.fields.iter().cloned()));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.timeout = multilang_timeout(ctx, self.timeout);
        self.ctx = Some(ctx.clone());
        // A bad serializer name is the topology's configuration, not the subprocess.
        serializer(ctx, self.spec.serializer).map_err(ComponentError::Config)?;
        self.proc = Some(
            self.spec
                .start(ctx, self.timeout)
                .map_err(ComponentError::Other)?,
        );
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if let Err(e) = self.exchange(&json!({"command": "next"}), Some(out)) {
            self.report(e, Some(out));
        }
    }

    fn ack(&mut self, id: &MessageId) {
        if let Err(e) = self.exchange(&json!({"command": "ack", "id": Self::id_json(id)}), None) {
            self.report(e, None);
        }
    }

    fn fail(&mut self, id: &MessageId) {
        if let Err(e) = self.exchange(&json!({"command": "fail", "id": Self::id_json(id)}), None) {
            self.report(e, None);
        }
    }

    fn close(&mut self) {
        self.proc = None;
    }
}
