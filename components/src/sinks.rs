//! Terminal bolts: logging, a TSV file of the latest value per key, and an append-only TSV file
//! of every tuple.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use topology_api::bytemap::ByteMap;
use topology_api::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Inputs, OutputDeclarer, OutputSink,
    TopologyContext,
};
use topology_api::tuple::Tuple;
use topology_api::value::{SmolStr, Value};
use topology_api::wire::ValueRef;

/// Logs each tuple at INFO, as Storm's `LogInfoBolt`.
#[derive(Debug, Default)]
pub struct LogInfoBolt {
    component: String,
    task: u32,
}

impl Bolt for LogInfoBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.component = ctx.component_id.clone();
        self.task = ctx.task_id;
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BoltCollector<'_>) {
        let values: Vec<String> = input.values().map(|v| v.to_string()).collect();
        tracing::info!(
            component = %self.component,
            task = self.task,
            from = input.source_component(),
            stream = input.source_stream(),
            "Tuple [{}]",
            values.join(", ")
        );
    }
}

/// Keeps the latest value per key (field 0; the value is field 1, or the whole rest of the tuple)
/// and at cleanup writes `key<TAB>value` lines to `path`, sorted by value descending, then key.
///
/// The file is written to `path.tmp` and renamed, so a reader never sees half a file.
#[derive(Debug)]
pub struct TsvSinkBolt {
    path: String,
    resolved: PathBuf,
    /// Keys whose latest value is an integer (a running count): 32-byte entries, so the table
    /// the sink touches per tuple is as small as it can be. Looked up by the key's UTF-8 bytes
    /// as the tuple holds them (never decoded per tuple); keys of up to 23 bytes are inline.
    ints: ByteMap<SmolStr, i64>,
    /// Keys whose latest value is anything else. A key is in one of the two maps.
    others: ByteMap<SmolStr, Value>,
}

impl TsvSinkBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let path = args.require_nonempty_str("path")?;
        Ok(TsvSinkBolt {
            resolved: PathBuf::from(&path),
            path,
            ints: ByteMap::new(),
            others: ByteMap::new(),
        })
    }

    #[inline(always)]
    fn set_int(&mut self, key: &[u8], window: Option<&[u8; 16]>, n: i64) {
        if let Some((_, slot)) = self.ints.get_mut_in(key, window) {
            *slot = n;
            return;
        }
        self.insert_int(key, n);
    }

    /// A key's first integer: kept out of line, so the per-tuple update stays small.
    #[cold]
    #[inline(never)]
    fn insert_int(&mut self, key: &[u8], n: i64) {
        if !self.others.is_empty() {
            self.others.remove(key);
        }
        self.ints
            .insert(SmolStr::new(String::from_utf8_lossy(key)), n);
    }

    fn set_other(&mut self, key: SmolStr, value: Value) {
        if !self.ints.is_empty() {
            self.ints.remove(key.as_bytes());
        }
        self.others.insert(key, value);
    }

    /// Keys held.
    fn len(&self) -> usize {
        self.ints.len() + self.others.len()
    }

    fn write(&self) -> std::io::Result<()> {
        let mut rows: Vec<(&[u8], Value)> = self
            .ints
            .iter()
            .map(|(k, n)| (k.as_bytes(), Value::Int(*n)))
            .chain(self.others.iter().map(|(k, v)| (k.as_bytes(), v.clone())))
            .collect();
        rows.sort_by(|a, b| compare_values(&b.1, &a.1).then_with(|| a.0.cmp(b.0)));
        if let Some(dir) = self.resolved.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        refuse_non_file(&self.resolved)?;
        let mut tmp = self.resolved.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut w = BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
        for (k, v) in rows {
            writeln!(w, "{}\t{v}", String::from_utf8_lossy(k))?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.resolved)
    }
}

/// A sink replaces only a regular file (or nothing) at its path: never a device (`/dev/full`), a
/// FIFO, a socket, a folder or a symlink (the rename would put a file where they were).
fn refuse_non_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is not a regular file (a device, FIFO, folder or symlink); the sink writes its output only to a regular file it may replace: choose another path",
        )),
        _ => Ok(()),
    }
}

fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

impl Bolt for TsvSinkBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.resolved = ctx.resolve_path(&self.path);
        // Refused before any tuple runs, rather than after all of them.
        refuse_non_file(&self.resolved).map_err(|source| ComponentError::Io {
            what: "cannot write the sink's output to",
            path: self.resolved.clone(),
            source,
        })
    }

    // Inlined into `execute_batch`: no call per tuple.
    #[inline(always)]
    fn execute(&mut self, input: &Tuple, _out: &mut BoltCollector<'_>) {
        // The common case, a string key and one integer (`word, count`), read in one pass and
        // updated in place.
        if let Some((2, mut r)) = input.reader()
            && let Some(k) = r.str_bytes()
            && let Some(n) = r.int_value()
        {
            self.set_int(k, input.window(k), n);
            return;
        }
        let mut values = input.values();
        let Some(key) = values.next() else { return };
        let value = match (values.next(), values.next()) {
            (None, _) => Value::Null,
            (Some(v), None) => v.to_value(),
            (Some(a), Some(b)) => {
                let mut rest = vec![a.to_value(), b.to_value()];
                rest.extend(values.map(|v| v.to_value()));
                Value::List(rest.into())
            }
        };
        let key = match key {
            ValueRef::Str(k) => SmolStr::new(k),
            other => SmolStr::new(other.to_string()),
        };
        match value {
            Value::Int(n) => self.set_int(key.as_bytes(), None, n),
            value => self.set_other(key, value),
        }
    }

    /// Writes the file; an error fails the run (the counts would be lost).
    fn end(&mut self) -> Result<(), ComponentError> {
        self.write().map_err(|source| ComponentError::Io {
            what: "cannot write the sink's output to",
            path: self.resolved.clone(),
            source,
        })?;
        tracing::info!(path = %self.resolved.display(), keys = self.len(), "Wrote sink file");
        Ok(())
    }
}

/// Appends each tuple to `path` as one tab-separated line, and lets it be acked only after the
/// line is written: a sink that keeps Storm's at-least-once promise across crashes (a tuple is
/// either in the file or replayed; a crash between the write and the ack gives a duplicate line).
///
/// Each line is one `write` on a file opened for appending, so several tasks (or a task restarted
/// after a crash) may share the file. Written to the operating system, not `fsync`ed: the lines
/// survive a process crash, not a power cut.
#[derive(Debug)]
pub struct FileSinkBolt {
    path: String,
    file: Option<std::fs::File>,
    line: String,
}

impl FileSinkBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let path = args.require_nonempty_str("path")?;
        Ok(FileSinkBolt {
            path,
            file: None,
            line: String::new(),
        })
    }
}

impl Bolt for FileSinkBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let path = ctx.resolve_path(&self.path);
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ComponentError::Io {
                what: "cannot open sink file",
                path,
                source,
            })?;
        self.file = Some(f);
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        self.line.clear();
        push_line(&mut self.line, input);
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(self.line.as_bytes()),
            None => Err(std::io::Error::other("not prepared")),
        };
        match written {
            Ok(()) => out.ack(input),
            Err(e) => {
                out.report_error(&format!("cannot append to {}: {e}", self.path));
                out.fail(input);
            }
        }
    }

    /// A batch's lines in one `write`, then their acks (or their fails): one system call per
    /// batch rather than per tuple, with the same promise (a tuple is acked only once its line
    /// is written).
    fn execute_batch(
        &mut self,
        inputs: Inputs<'_>,
        sink: &mut dyn OutputSink,
        _auto_ack: bool,
        _acking: bool,
    ) -> u64 {
        self.line.clear();
        for t in inputs.clone() {
            push_line(&mut self.line, &t);
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(self.line.as_bytes()),
            None => Err(std::io::Error::other("not prepared")),
        };
        if let Err(e) = &written {
            sink.report_error(&format!("cannot append to {}: {e}", self.path));
        }
        for t in inputs {
            sink.begin_input(&t);
            match written {
                Ok(()) => sink.ack(&t),
                Err(_) => sink.fail(&t),
            }
        }
        // (A 1 MB batch of lines is not kept: the next batch starts small again.)
        if self.line.capacity() > 1 << 20 {
            self.line = String::new();
        }
        0
    }

    fn auto_ack(&self) -> bool {
        false
    }
}

/// Appends `t`'s values as one tab-separated line.
fn push_line(line: &mut String, t: &Tuple) {
    use std::fmt::Write as _;
    for (i, v) in t.values().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        let _ = write!(line, "{v}");
    }
    line.push('\n');
}

/// Sleeps `millis` (property, default 1) per tuple and emits nothing: a deliberately slow bolt
/// for seeing backpressure at work.
#[derive(Debug)]
pub struct SleepBolt {
    pause: std::time::Duration,
}

impl SleepBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let ms = match args.properties.get("millis") {
            None => 1,
            Some(v) => v.as_u64().ok_or_else(|| {
                ComponentError::Config(format!(
                    "property \"millis\" must be a whole number of milliseconds, found {v}"
                ))
            })?,
        };
        Ok(SleepBolt {
            pause: std::time::Duration::from_millis(ms),
        })
    }
}

impl Bolt for SleepBolt {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}

    fn execute(&mut self, _input: &Tuple, _out: &mut BoltCollector<'_>) {
        std::thread::sleep(self.pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use topology_api::component::{Emission, OutputSink};
    use topology_api::tuple::StreamSource;
    use topology_api::value::Fields;
    use topology_api::values;

    struct Nothing;

    impl OutputSink for Nothing {
        fn emit(&mut self, _: Emission<'_>, _: Option<&mut Vec<u32>>) {}
        fn ack(&mut self, _: &Tuple) {}
        fn fail(&mut self, _: &Tuple) {}
        fn report_error(&mut self, m: &str) {
            panic!("unexpected error: {m}");
        }
    }

    #[test]
    fn keeps_the_latest_value_per_key_whatever_its_kind() {
        let dir = std::env::temp_dir().join(format!("gale-tsv-{}", std::process::id()));
        let path = dir.join("out.tsv");
        let args = ComponentArgs {
            properties: BTreeMap::from([("path".into(), path.display().to_string().into())]),
            ..ComponentArgs::default()
        };
        let mut sink = TsvSinkBolt::from_args(&args).expect("args");
        sink.resolved = path.clone();
        let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
        let tuples = [
            values!["storm", 1],
            values!["gale", 1],
            values!["storm", 2],
            // An integer key is written by its text; a string value replaces an integer one.
            values![7, 1],
            values!["gale", "many"],
            // And an integer replaces a string again; three values keep the rest as a list.
            values!["flux", "x"],
            values!["flux", 3],
            values!["pair", 1, 2],
        ];
        for v in tuples {
            let t = Tuple::new(src, 1, v);
            sink.execute(&t, &mut BoltCollector::new(&mut Nothing));
        }
        assert_eq!(sink.len(), 5);
        sink.end().expect("written");
        let text = std::fs::read_to_string(&path).expect("written");
        assert_eq!(
            text, "gale\tmany\npair\t[1, 2]\nflux\t3\nstorm\t2\n7\t1\n",
            "sorted by value descending (integers by number, mixed kinds by their text), then key"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_sink_never_replaces_what_is_not_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("gale-sink-refuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a-folder")).expect("dir");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).expect("symlink");
        for name in ["a-folder", "fifo", "link"] {
            let path = dir.join(name);
            assert!(refuse_non_file(&path).is_err(), "{name}");
            let mut sink = TsvSinkBolt::from_args(&ComponentArgs {
                properties: BTreeMap::from([("path".into(), path.display().to_string().into())]),
                ..ComponentArgs::default()
            })
            .expect("args");
            sink.resolved = path.clone();
            let e = sink.end().expect_err(name);
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        // Still what they were.
        assert!(std::fs::symlink_metadata(&fifo).is_ok_and(|m| !m.file_type().is_file()));
        assert!(dir.join("a-folder").is_dir());
        // /dev/full is a device: refused, never replaced by a regular file.
        assert!(refuse_non_file(std::path::Path::new("/dev/full")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
