//! `ShellBolt`: a bolt written in any language, spoken to over Storm's multi-lang protocol.
//!
//! The subprocess runs in the topology's resources folder. Messages are JSON objects, each
//! followed by a line `end`. Gale sends the handshake (`conf`, `context`, `pidDir`) and reads the
//! `pid`; then for each input tuple it sends `{"id", "comp", "stream", "task", "tuple"}` and
//! handles `emit` (with anchors, stream, direct task, and the task-id reply unless `need_task_ids`
//! is false), `ack`, `fail`, `log`, `error`, `metrics` and `sync` until the subprocess acks or
//! fails that tuple. A subprocess that exits, writes garbage or stays silent longer than
//! `topology.multilang.timeout.secs` (default 30) is reported with its stderr tail, the tuple
//! fails, and the subprocess is started again for the next tuple.

use crate::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector,
    TopologyContext,
};
use crate::tuple::{MessageId, Tuple};
use crate::value::{Fields, SmolStr, Value, Values};
use serde_json::{Value as Json, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest message accepted from a subprocess.
const MAX_MESSAGE: usize = 16 << 20;

/// Runs a multi-lang bolt: constructorArgs = [command line list, output fields list].
pub struct ShellBolt {
    command: Vec<String>,
    fields: Vec<String>,
    ctx: Option<TopologyContext>,
    proc: Option<Proc>,
    timeout: Duration,
    next_id: u64,
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Result<Json, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

impl ShellBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
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
        Ok(ShellBolt {
            command,
            fields,
            ctx: None,
            proc: None,
            timeout: Duration::from_secs(30),
            next_id: 0,
        })
    }

    fn start(&mut self) -> Result<Proc, String> {
        let ctx = self.ctx.as_ref().ok_or("not prepared")?;
        start_proc(&self.command, ctx, self.timeout)
    }

    fn tail(p: &Proc) -> String {
        p.tail()
    }
}

impl Proc {
    fn tail(&self) -> String {
        let t = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join(" | ")
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
    let stderr_pipe = child.stderr.take().ok_or("no stderr")?;
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    let tail = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() >= 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut msg = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err("the subprocess closed its output (exited?)".into()));
                    return;
                }
                Ok(_) => {}
            }
            if line.trim_end() == "end" {
                let parsed = serde_json::from_str::<Json>(&msg).map_err(|e| {
                    format!(
                        "garbage from the subprocess ({e}): {}",
                        msg.chars().take(200).collect::<String>()
                    )
                });
                msg.clear();
                let bad = parsed.is_err();
                if tx.send(parsed).is_err() || bad {
                    return;
                }
            } else {
                msg.push_str(&line);
                if msg.len() > MAX_MESSAGE {
                    let _ = tx.send(Err(format!("a message longer than {MAX_MESSAGE} bytes")));
                    return;
                }
            }
        }
    });
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
    let handshake = json!({
        "conf": Json::Object((*ctx.config).clone()),
        "pidDir": pid_dir.display().to_string(),
        "context": {
            "task->component": task_component,
            "taskid": ctx.task_id,
            "componentid": ctx.component_id,
            "stormid": ctx.topology_name,
        }
    });
    let mut p = Proc {
        child,
        stdin,
        messages: rx,
        stderr,
    };
    send(&mut p.stdin, &handshake)?;
    match p.messages.recv_timeout(timeout) {
        Ok(Ok(m)) if m.get("pid").is_some() => Ok(p),
        Ok(Ok(m)) => Err(format!(
            "expected {{\"pid\": N}} after the handshake, got {m}"
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer to the handshake".into()),
    }
}

/// `topology.multilang.timeout.secs`, or `default`.
fn multilang_timeout(ctx: &TopologyContext, default: Duration) -> Duration {
    ctx.config
        .get("topology.multilang.timeout.secs")
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
        .unwrap_or(crate::tuple::DEFAULT_STREAM);
    let direct = m.get("task").and_then(Json::as_u64).map(|t| t as u32);
    let need_ids = m
        .get("need_task_ids")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    (values, stream, direct, need_ids)
}

fn send(stdin: &mut ChildStdin, v: &Json) -> Result<(), String> {
    let mut s = v.to_string();
    s.push_str("\nend\n");
    stdin
        .write_all(s.as_bytes())
        .and_then(|_| stdin.flush())
        .map_err(|e| format!("cannot write to the subprocess: {e}"))
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
        d.declare(Fields::new(self.fields.iter().cloned()));
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.timeout = multilang_timeout(ctx, self.timeout);
        self.ctx = Some(ctx.clone());
        self.proc = Some(self.start().map_err(ComponentError::Other)?);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        if self.proc.is_none() {
            match self.start() {
                Ok(p) => self.proc = Some(p),
                Err(e) => {
                    out.report_error(&format!(
                        "subprocess {:?} cannot restart: {e}",
                        self.command
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
            "tuple": input.values().iter().map(to_json).collect::<Vec<_>>(),
        });
        let result = self.exchange(&id, &msg, input, out);
        if let Err(e) = result {
            let tail = self.proc.as_ref().map(Self::tail).unwrap_or_default();
            out.report_error(&format!(
                "subprocess {:?}: {e}; stderr: {tail}",
                self.command
            ));
            out.fail(input);
            // Dropping the process kills it; the next tuple starts a new one.
            self.proc = None;
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
    /// Sends one tuple and handles the subprocess's messages until it acks or fails it.
    fn exchange(
        &mut self,
        id: &str,
        msg: &Json,
        input: &Tuple,
        out: &mut BoltCollector<'_>,
    ) -> Result<(), String> {
        let timeout = self.timeout;
        let p = self.proc.as_mut().ok_or("no subprocess")?;
        send(&mut p.stdin, msg)?;
        loop {
            let m = match p.messages.recv_timeout(timeout) {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no answer within {} s", timeout.as_secs()));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("the subprocess is gone".into()),
            };
            let command = m.get("command").and_then(Json::as_str).unwrap_or("");
            match command {
                "emit" => {
                    let (values, stream, direct, need_ids) = parse_emit(&m);
                    let anchored = m.get("anchors").and_then(Json::as_array).is_some_and(|a| {
                        a.iter().any(|x| {
                            x.as_str() == Some(id)
                                || x.as_u64().map(|n| n.to_string()).as_deref() == Some(id)
                        })
                    });
                    let anchors: &[&Tuple] = if anchored { &[input] } else { &[] };
                    let tasks = out.emit_returning_tasks(stream, anchors, values, direct);
                    if need_ids {
                        send(&mut p.stdin, &Json::from(tasks))?;
                    }
                }
                "ack" | "fail" => {
                    let acked = m.get("id").map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    });
                    if acked.as_deref() == Some(id) {
                        if command == "ack" {
                            out.ack(input);
                        } else {
                            out.fail(input);
                        }
                        return Ok(());
                    }
                }
                "log" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                    tracing::info!(command = ?self.command, "{text}");
                }
                "error" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                    out.report_error(text);
                }
                "sync" | "metrics" => {}
                other => return Err(format!("unknown command \"{other}\" in {m}")),
            }
        }
    }
}

/// Runs a multi-lang spout: constructorArgs = [command line list, output fields list].
///
/// Each `next_tuple` sends `{"command": "next"}` and handles the spout's emits until its `sync`;
/// `ack`/`fail` send `{"command": "ack"|"fail", "id"}` and wait for `sync` too. Message ids are
/// kept as the JSON the spout gave, and handed back as such.
pub struct ShellSpout {
    command: Vec<String>,
    fields: Vec<String>,
    ctx: Option<TopologyContext>,
    proc: Option<Proc>,
    timeout: Duration,
}

impl ShellSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let b = ShellBolt::from_args(args)?;
        Ok(ShellSpout {
            command: b.command.clone(),
            fields: b.fields.clone(),
            ctx: None,
            proc: None,
            timeout: b.timeout,
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
            self.proc = Some(start_proc(&self.command, ctx, self.timeout)?);
        }
        let timeout = self.timeout;
        let p = self.proc.as_mut().ok_or("no subprocess")?;
        send(&mut p.stdin, msg)?;
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
                        send(&mut p.stdin, &Json::from(tasks))?;
                    }
                }
                "log" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("");
                    tracing::info!(command = ?self.command, "{text}");
                }
                "error" => {
                    let text = m.get("msg").and_then(Json::as_str).unwrap_or("").to_owned();
                    match out.as_deref_mut() {
                        Some(out) => out.report_error(&text),
                        None => tracing::warn!(command = ?self.command, "{text}"),
                    }
                }
                "metrics" => {}
                other => return Err(format!("unknown command \"{other}\" in {m}")),
            }
        }
    }

    fn report(&mut self, e: String, out: Option<&mut SpoutCollector<'_>>) {
        let tail = self.proc.as_ref().map(Proc::tail).unwrap_or_default();
        let msg = format!("subprocess {:?}: {e}; stderr: {tail}", self.command);
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
        d.declare(Fields::new(self.fields.iter().cloned()));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.timeout = multilang_timeout(ctx, self.timeout);
        self.ctx = Some(ctx.clone());
        self.proc =
            Some(start_proc(&self.command, ctx, self.timeout).map_err(ComponentError::Other)?);
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
