//! `FileLineSpout`: each line of a file once, reliably, then finished.

use crate::component::{
    ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector, TopologyContext,
};
use crate::spec::keys;
use crate::tuple::MessageId;
use crate::value::{Fields, SmolStr, Value, Values, small_str};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Emits each line of `path` (field `line`) with its 0-based line number as message id.
///
/// - The file is streamed, never loaded whole.
/// - With several tasks, task `i` of `n` emits the lines whose number is `i` modulo `n`, so every
///   line is emitted once by the component as a whole.
/// - Invalid UTF-8 is replaced by U+FFFD; a trailing `\r` is dropped.
/// - With acking on, emitted lines are kept until acked, and a failed line is emitted again.
///   The spout is finished when the file is read and nothing is pending.
/// - With property `checkpoint` (a path), each task keeps in `PATH.taskI-of-N` the number of
///   leading lines of the file that are settled for it (acked, or emitted with acking off): the
///   committed offset, as a Kafka spout commits one. A task that opens (after its worker died and
///   was restarted, here or on another supervisor) resumes from there: lines emitted after the
///   last commit are emitted again (at least once), none is skipped. The file is written at most
///   every 200 ms, and when the task finishes or closes; it must be on storage every supervisor
///   that may run the spout can reach. Delete it to read the file from the start.
pub struct FileLineSpout {
    path: String,
    reader: Option<BufReader<File>>,
    buf: Vec<u8>,
    line_no: u64,
    task_index: u64,
    tasks: u64,
    reliable: bool,
    /// Emitted, not yet acked lines of this task, by position: line numbers of one task step by
    /// `tasks`, so slot `i` holds line `pending_base + i * tasks` (no hashing per line).
    pending: VecDeque<Option<SmolStr>>,
    pending_base: u64,
    pending_live: usize,
    replay: VecDeque<u64>,
    eof: bool,
    checkpoint: Option<String>,
    checkpoint_file: Option<PathBuf>,
    committed: u64,
    committed_at: Option<Instant>,
}

/// How often a checkpoint is written while lines are being acked.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

impl FileLineSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let path = match args.property_str("path") {
            Some(p) => p,
            None => match args.constructor_args.first() {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => return Err(ComponentError::Config(
                    "missing property \"path\" (the file to read): add `properties: [{name: \"path\", value: \"input.txt\"}]`".into(),
                )),
            },
        };
        if path.is_empty() {
            return Err(ComponentError::Config("property \"path\" is empty".into()));
        }
        Ok(FileLineSpout {
            path,
            reader: None,
            buf: Vec::with_capacity(256),
            line_no: 0,
            task_index: 0,
            tasks: 1,
            reliable: false,
            pending: VecDeque::new(),
            pending_base: 0,
            pending_live: 0,
            replay: VecDeque::new(),
            eof: false,
            checkpoint: args.property_str("checkpoint").filter(|p| !p.is_empty()),
            checkpoint_file: None,
            committed: 0,
            committed_at: None,
        })
    }

    /// Lines before this number are settled for this task.
    fn settled_through(&self) -> u64 {
        if self.pending_live > 0 || !self.replay.is_empty() {
            self.pending_base
        } else {
            self.line_no
        }
    }

    /// Writes the checkpoint when it moved and `force` or the interval passed.
    fn commit(&mut self, force: bool) {
        let Some(path) = self.checkpoint_file.as_ref() else {
            return;
        };
        let through = self.settled_through();
        if through == self.committed
            || (!force
                && self
                    .committed_at
                    .is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY))
        {
            return;
        }
        let tmp = path.with_extension("tmp");
        let r =
            std::fs::write(&tmp, format!("{through}\n")).and_then(|_| std::fs::rename(&tmp, path));
        match r {
            Ok(()) => {
                self.committed = through;
                self.committed_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Cannot write the spout checkpoint")
            }
        }
    }

    fn slot(&self, no: u64) -> Option<usize> {
        let off = no.checked_sub(self.pending_base)?;
        (off % self.tasks == 0).then_some((off / self.tasks) as usize)
    }

    fn pending_line(&self, no: u64) -> Option<&SmolStr> {
        self.pending.get(self.slot(no)?)?.as_ref()
    }

    fn settle(&mut self, no: u64) -> bool {
        let Some(i) = self.slot(no) else { return false };
        let Some(slot) = self.pending.get_mut(i) else {
            return false;
        };
        if slot.take().is_none() {
            return false;
        }
        self.pending_live -= 1;
        while matches!(self.pending.front(), Some(None)) {
            self.pending.pop_front();
            self.pending_base += self.tasks;
        }
        true
    }

    fn emit_line(&mut self, out: &mut SpoutCollector<'_>, no: u64, line: SmolStr) {
        if self.reliable {
            if self.pending.is_empty() {
                self.pending_base = no;
            }
            if let Some(i) = self.slot(no) {
                while self.pending.len() <= i {
                    self.pending.push_back(None);
                }
                self.pending[i] = Some(line.clone());
                self.pending_live += 1;
            }
        }
        let mut v = Values::new();
        v.push(Value::Str(line));
        out.emit_with_id(v, MessageId::Int(no));
    }
}

impl Spout for FileLineSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["line"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let path: PathBuf = ctx.resolve_input_path(&self.path);
        let f = File::open(&path).map_err(|source| ComponentError::Io {
            what: "cannot open input file",
            path: path.clone(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(256 << 10, f);
        self.task_index = ctx.task_index() as u64;
        self.tasks = ctx.tasks_of(&ctx.component_id).len().max(1) as u64;
        if let Some(cp) = &self.checkpoint {
            let file = PathBuf::from(format!(
                "{}.task{}-of-{}",
                ctx.resolve_path(cp).display(),
                self.task_index,
                self.tasks
            ));
            let resume = match std::fs::read_to_string(&file) {
                Ok(t) => t.trim().parse::<u64>().map_err(|_| {
                    ComponentError::Config(format!(
                        "checkpoint {} does not hold a line number; delete it to start over",
                        file.display()
                    ))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(source) => {
                    return Err(ComponentError::Io {
                        what: "cannot read checkpoint",
                        path: file,
                        source,
                    });
                }
            };
            // Skip the settled lines (streamed, as the rest of the file is).
            while self.line_no < resume {
                self.buf.clear();
                match reader.read_until(b'\n', &mut self.buf) {
                    Ok(0) => break,
                    Ok(_) => self.line_no += 1,
                    Err(source) => {
                        return Err(ComponentError::Io {
                            what: "cannot read input file",
                            path: path.clone(),
                            source,
                        });
                    }
                }
            }
            if resume > 0 {
                tracing::info!(
                    component = %ctx.component_id,
                    task = ctx.task_id,
                    "Resuming {} from line {} (checkpoint {})",
                    path.display(),
                    self.line_no,
                    file.display()
                );
            }
            self.committed = self.line_no;
            self.checkpoint_file = Some(file);
        }
        self.reader = Some(reader);
        let workers = ctx
            .config
            .get(keys::WORKERS)
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        let ackers = ctx
            .config
            .get(keys::ACKER_EXECUTORS)
            .and_then(|v| v.as_u64())
            .unwrap_or(workers);
        self.reliable = ackers > 0;
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if let Some(no) = self.replay.pop_front() {
            if let Some(line) = self.pending_line(no).cloned() {
                let mut v = Values::new();
                v.push(Value::Str(line));
                out.emit_with_id(v, MessageId::Int(no));
            }
            return;
        }
        if self.eof {
            // Written at once when the last line settles; rate-limited until then.
            self.commit(self.pending_live == 0);
            return;
        }
        let Some(reader) = self.reader.as_mut() else {
            self.eof = true;
            return;
        };
        loop {
            self.buf.clear();
            match reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    out.report_error(&format!("reading {}: {e}", self.path));
                    self.eof = true;
                    return;
                }
            }
            let no = self.line_no;
            self.line_no += 1;
            if no % self.tasks != self.task_index {
                continue;
            }
            let mut bytes = self.buf.as_slice();
            if let Some(b) = bytes.strip_suffix(b"\n") {
                bytes = b;
            }
            if let Some(b) = bytes.strip_suffix(b"\r") {
                bytes = b;
            }
            let line = match std::str::from_utf8(bytes) {
                Ok(s) => small_str(s),
                Err(_) => SmolStr::new(String::from_utf8_lossy(bytes)),
            };
            self.emit_line(out, no, line);
            if !self.reliable {
                self.commit(false);
            }
            return;
        }
    }

    fn ack(&mut self, id: &MessageId) {
        if let MessageId::Int(no) = id
            && self.settle(*no)
        {
            self.commit(false);
        }
    }

    fn close(&mut self) {
        self.commit(true);
    }

    fn deactivate(&mut self) {
        self.commit(true);
    }

    fn fail(&mut self, id: &MessageId) {
        if let MessageId::Int(no) = id
            && self.pending_line(*no).is_some()
        {
            self.replay.push_back(*no);
        }
    }

    fn is_finished(&self) -> bool {
        self.eof && self.pending_live == 0 && self.replay.is_empty()
    }
}
