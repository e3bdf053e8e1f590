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

/// Emits each line of `path` (field `line`) with its 0-based line number as message id.
///
/// - The file is streamed, never loaded whole.
/// - With several tasks, task `i` of `n` emits the lines whose number is `i` modulo `n`, so every
///   line is emitted once by the component as a whole.
/// - Invalid UTF-8 is replaced by U+FFFD; a trailing `\r` is dropped.
/// - With acking on, emitted lines are kept until acked, and a failed line is emitted again.
///   The spout is finished when the file is read and nothing is pending.
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
}

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
        })
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
        self.reader = Some(BufReader::with_capacity(256 << 10, f));
        self.task_index = ctx.task_index() as u64;
        self.tasks = ctx.tasks_of(&ctx.component_id).len().max(1) as u64;
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
            return;
        }
    }

    fn ack(&mut self, id: &MessageId) {
        if let MessageId::Int(no) = id {
            self.settle(*no);
        }
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
