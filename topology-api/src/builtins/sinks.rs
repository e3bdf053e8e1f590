//! Terminal bolts: logging, a TSV file of the latest value per key, and an append-only TSV file
//! of every tuple.

use crate::bytemap::ByteMap;
use crate::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, OutputDeclarer, TopologyContext,
};
use crate::tuple::Tuple;
use crate::value::{SmolStr, Value};
use crate::wire::ValueRef;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

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
    /// Looked up by the key's UTF-8 bytes as the tuple holds them (never decoded per tuple);
    /// keys of up to 23 bytes are stored inline in the table.
    latest: ByteMap<SmolStr, Value>,
}

impl TsvSinkBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let path = args.require_nonempty_str("path")?;
        Ok(TsvSinkBolt {
            resolved: PathBuf::from(&path),
            path,
            latest: ByteMap::new(),
        })
    }

    fn write(&self) -> std::io::Result<()> {
        let mut rows: Vec<(&[u8], &Value)> =
            self.latest.iter().map(|(k, v)| (k.as_bytes(), v)).collect();
        rows.sort_by(|a, b| compare_values(b.1, a.1).then_with(|| a.0.cmp(b.0)));
        if let Some(dir) = self.resolved.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
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
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BoltCollector<'_>) {
        // The common case, a string key and one integer (`word, count`), read in one pass and
        // updated in place.
        if let Some((2, mut r)) = input.reader()
            && let Some(k) = r.str_bytes()
            && let Some(n) = r.int_value()
        {
            match self.latest.get_mut(k) {
                Some((_, Value::Int(slot))) => *slot = n,
                Some((_, slot)) => *slot = Value::Int(n),
                None => {
                    self.latest
                        .insert(SmolStr::new(String::from_utf8_lossy(k)), Value::Int(n));
                }
            }
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
        self.latest.insert(key, value);
    }

    fn cleanup(&mut self) {
        match self.write() {
            Ok(()) => {
                tracing::info!(path = %self.resolved.display(), keys = self.latest.len(), "Wrote sink file")
            }
            Err(e) => {
                tracing::error!(path = %self.resolved.display(), error = %e, "Cannot write sink file")
            }
        }
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
        use std::fmt::Write as _;
        self.line.clear();
        for (i, v) in input.values().enumerate() {
            if i > 0 {
                self.line.push('\t');
            }
            let _ = write!(self.line, "{v}");
        }
        self.line.push('\n');
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

    fn auto_ack(&self) -> bool {
        false
    }
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
