//! `FileLineSpout`: each line of a file once, reliably, then finished.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use topology_api::component::{
    ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector, TopologyContext,
};
use topology_api::tuple::MessageId;
use topology_api::value::Fields;
use topology_api::wire::ValueRef;

/// Emits each line of `path` (field `line`) with its 0-based line number as message id.
///
/// - The file is streamed, never loaded whole.
/// - With several tasks, task `i` of `n` emits the lines whose number is `i` modulo `n`, so every
///   line is emitted once by the component as a whole.
/// - Invalid UTF-8 is replaced by U+FFFD; a trailing `\r` is dropped.
/// - With acking on, the file offsets of emitted lines are kept until acked, and a failed line is
///   read again from the file and emitted again (the spout holds 16 bytes per line in flight,
///   not the line).
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
    /// File offset of the next line read.
    offset: u64,
    /// Reads failed lines again, by offset (opened at the first replay).
    replay_reader: Option<BufReader<File>>,
    resolved: PathBuf,
    line_no: u64,
    task_index: u64,
    tasks: u64,
    reliable: bool,
    /// File offsets of emitted, not yet acked lines of this task, by position: line numbers of
    /// one task step by `tasks`, so slot `i` holds line `pending_base + i * tasks` (no hashing
    /// per line).
    pending: VecDeque<Option<u64>>,
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
            offset: 0,
            replay_reader: None,
            resolved: PathBuf::new(),
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
        if self.tasks == 1 {
            // One task (the common case): no divisions per line.
            return usize::try_from(off).ok();
        }
        (off % self.tasks == 0).then_some((off / self.tasks) as usize)
    }

    /// The file offset of a line in flight.
    fn pending_offset(&self, no: u64) -> Option<u64> {
        *self.pending.get(self.slot(no)?)?
    }

    /// Reads the line at `offset` again (a replay).
    fn read_line_at(&mut self, offset: u64) -> std::io::Result<String> {
        use std::io::{Seek, SeekFrom};
        let r = match self.replay_reader.as_mut() {
            Some(r) => r,
            None => self.replay_reader.insert(BufReader::with_capacity(
                8 << 10,
                File::open(&self.resolved)?,
            )),
        };
        r.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        r.read_until(b'\n', &mut buf)?;
        Ok(line_text(&buf).into_owned())
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

    /// Keeps a line's offset until it is acked (acking on).
    fn track(&mut self, no: u64, offset: u64) {
        if self.pending.is_empty() {
            self.pending_base = no;
        }
        if let Some(i) = self.slot(no) {
            while self.pending.len() <= i {
                self.pending.push_back(None);
            }
            self.pending[i] = Some(offset);
            self.pending_live += 1;
        }
    }
}

/// A line's text: without its line end, invalid UTF-8 replaced by U+FFFD.
fn line_text(mut bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Some(b) = bytes.strip_suffix(b"\n") {
        bytes = b;
    }
    if let Some(b) = bytes.strip_suffix(b"\r") {
        bytes = b;
    }
    // The full check first: it is several times faster than the lossy one on valid text.
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl Spout for FileLineSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["line"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let path: PathBuf = ctx.resolve_input_path(&self.path);
        if path.is_dir() {
            return Err(ComponentError::Io {
                what: "cannot read input",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "it is a folder; name a file of lines",
                ),
            });
        }
        let f = File::open(&path).map_err(|source| ComponentError::Io {
            what: "cannot open input file",
            path: path.clone(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(256 << 10, f);
        self.resolved = path.clone();
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
                    Ok(n) => {
                        self.line_no += 1;
                        self.offset += n as u64;
                    }
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
        self.reliable = ctx.acking();
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if let Some(no) = self.replay.pop_front() {
            if let Some(offset) = self.pending_offset(no) {
                match self.read_line_at(offset) {
                    Ok(line) => out.emit_refs_with_id(&[ValueRef::Str(&line)], MessageId::Int(no)),
                    Err(e) => {
                        out.report_error(&format!("reading {} again: {e}", self.path));
                        // Not emitted: failed again after the timeout, and retried.
                        self.replay.push_back(no);
                    }
                }
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
            let offset = self.offset;
            match reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => self.offset += n as u64,
                Err(e) => {
                    out.report_error(&format!("reading {}: {e}", self.path));
                    self.eof = true;
                    return;
                }
            }
            let no = self.line_no;
            self.line_no += 1;
            // Lines are dealt out among the spout's tasks (no division with one task).
            if self.tasks > 1 && no % self.tasks != self.task_index {
                continue;
            }
            if self.reliable {
                self.track(no, offset);
            }
            // Emitted straight from the read buffer: nothing is allocated per line.
            let line = line_text(&self.buf);
            out.emit_refs_with_id(&[ValueRef::Str(&line)], MessageId::Int(no));
            if !self.reliable {
                self.commit(false);
            }
            return;
        }
    }

    /// The next line to read and its file offset.
    fn position(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({"line": self.line_no, "offset": self.offset}))
    }

    fn seek(&mut self, position: Option<&serde_json::Value>) -> Result<(), ComponentError> {
        use std::io::{Seek, SeekFrom};
        let field = |k: &str| position.and_then(|p| p.get(k)).and_then(|v| v.as_u64());
        let (line, offset) = (field("line").unwrap_or(0), field("offset").unwrap_or(0));
        let mut f = File::open(&self.resolved).map_err(|source| ComponentError::Io {
            what: "cannot open input file",
            path: self.resolved.clone(),
            source,
        })?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|source| ComponentError::Io {
                what: "cannot seek in input file",
                path: self.resolved.clone(),
                source,
            })?;
        self.reader = Some(BufReader::with_capacity(256 << 10, f));
        self.line_no = line;
        self.offset = offset;
        self.eof = false;
        self.pending.clear();
        self.pending_base = line;
        self.pending_live = 0;
        self.replay.clear();
        Ok(())
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
            && self.pending_offset(*no).is_some()
        {
            self.replay.push_back(*no);
        }
    }

    fn is_finished(&self) -> bool {
        self.eof && self.pending_live == 0 && self.replay.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use topology_api::component::{Emission, OutputSink};
    use topology_api::keys;
    use topology_api::tuple::Tuple;

    /// Records (message id, line) per emission.
    #[derive(Default)]
    struct Lines(Vec<(u64, String)>);

    impl OutputSink for Lines {
        fn emit(&mut self, e: Emission<'_>, _: Option<&mut Vec<u32>>) {
            let Some(MessageId::Int(no)) = e.message_id else {
                panic!("FileLineSpout emits with line numbers as ids");
            };
            let line = e.values.to_values()[0].as_str().unwrap_or("?").to_owned();
            self.0.push((no, line));
        }
        fn ack(&mut self, _: &Tuple) {}
        fn fail(&mut self, _: &Tuple) {}
        fn report_error(&mut self, m: &str) {
            panic!("unexpected error: {m}");
        }
    }

    fn open(path: &std::path::Path, ackers: u64) -> FileLineSpout {
        let args = ComponentArgs {
            properties: BTreeMap::from([("path".into(), path.display().to_string().into())]),
            ..ComponentArgs::default()
        };
        let mut s = FileLineSpout::from_args(&args).expect("args");
        let mut config = serde_json::Map::new();
        config.insert(keys::ACKER_EXECUTORS.into(), ackers.into());
        let ctx = TopologyContext {
            topology_name: "t".into(),
            component_id: "lines".into(),
            task_id: 1,
            component_tasks: Arc::new(BTreeMap::from([("lines".into(), vec![1])])),
            config: Arc::new(config),
            resources_dir: PathBuf::from("."),
            inputs: Vec::new(),
            state: None,
            inputs_ended: None,
            checkpoints_done: None,
        };
        s.open(&ctx).expect("open");
        s
    }

    #[test]
    fn failed_lines_are_read_again_from_the_file_and_emitted_again() {
        let dir = std::env::temp_dir().join(format!("gale-fls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("in.txt");
        std::fs::write(&path, b"first line\r\nsecond \xff line\n\nlast, no newline")
            .expect("write");
        let mut s = open(&path, 1);
        let mut out = Lines::default();
        while !s.eof {
            s.next_tuple(&mut SpoutCollector::new(&mut out));
        }
        let want = [
            (0, "first line"),
            (1, "second \u{fffd} line"),
            (2, ""),
            (3, "last, no newline"),
        ];
        let got: Vec<(u64, &str)> = out.0.iter().map(|(n, l)| (*n, l.as_str())).collect();
        assert_eq!(got, want);
        assert!(!s.is_finished(), "nothing acked yet");
        // Lines 1 and 3 fail, the others are acked: the failed ones come back, in fail order.
        s.fail(&MessageId::Int(3));
        s.fail(&MessageId::Int(1));
        s.ack(&MessageId::Int(0));
        s.ack(&MessageId::Int(2));
        out.0.clear();
        s.next_tuple(&mut SpoutCollector::new(&mut out));
        s.next_tuple(&mut SpoutCollector::new(&mut out));
        let got: Vec<(u64, &str)> = out.0.iter().map(|(n, l)| (*n, l.as_str())).collect();
        assert_eq!(got, [(3, "last, no newline"), (1, "second \u{fffd} line")]);
        s.ack(&MessageId::Int(1));
        assert!(!s.is_finished());
        s.ack(&MessageId::Int(3));
        assert!(s.is_finished());
        // Acked twice or never emitted: ignored.
        s.ack(&MessageId::Int(3));
        s.fail(&MessageId::Int(9));
        assert!(s.is_finished());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_ackers_nothing_is_kept() {
        let dir = std::env::temp_dir().join(format!("gale-fls0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("in.txt");
        std::fs::write(&path, "a\nb\n").expect("write");
        let mut s = open(&path, 0);
        let mut out = Lines::default();
        for _ in 0..3 {
            s.next_tuple(&mut SpoutCollector::new(&mut out));
        }
        assert_eq!(out.0.len(), 2);
        assert!(s.pending.is_empty());
        assert!(s.is_finished());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
