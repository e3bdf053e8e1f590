//! `WindowCountBolt`: counts the tuples of each window, in all or per key, by count or by time
//! (processing or event time), as Flux's `TestWindowBolt` and beyond.

use std::collections::BTreeMap;
use topology_api::component::{BoltCollector, ComponentArgs, ComponentError, OutputDeclarer};
use topology_api::tuple::{DEFAULT_STREAM, Tuple};
use topology_api::value::{Fields, Value, Values};
use topology_api::window::WindowConfig;
use topology_api::windowed::{Window, WindowedBolt};

/// Counts the tuples of each window (a windowed bolt: the runtime keeps the windows).
///
/// The window comes from Flux `configMethods` — `withWindow(length, slide)`,
/// `withTumblingWindow(length)` with `BaseWindowedBolt$Count` or `$Duration` arguments,
/// `withTimestampField`, `withLag`, `withLateTupleStream` — or from properties (`windowLength`,
/// `slidingInterval`, `windowLengthMs`, `slidingIntervalMs`, `timestampField`, `lagMs`,
/// `lateTupleStream`), or Storm's `topology.bolts.window.*` keys.
///
/// Without `keyField` it emits the window's size, field `count` (Storm's `TestWindowBolt`),
/// anchored to the window's tuples. With `keyField` it emits, per key in the window,
/// `(key, count, windowStart, windowEnd)` anchored to that key's tuples (`windowStart` is null
/// for count windows).
#[derive(Debug)]
pub struct WindowCountBolt {
    key_field: Option<String>,
}

impl WindowCountBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        // The window is checked here, so a bad one is reported at validation; one given only by
        // the topology's keys is checked when the task starts.
        if let Err(e) = WindowConfig::from_args(args, &serde_json::Map::new())
            && !e.to_string().contains("no window given")
        {
            return Err(e);
        }
        let key_field = args.property_str("keyField");
        if key_field.as_deref() == Some("") {
            return Err(ComponentError::Config(
                "property keyField: expected a field name".into(),
            ));
        }
        Ok(WindowCountBolt { key_field })
    }
}

impl WindowedBolt for WindowCountBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        match self.key_field {
            Some(_) => d.declare(Fields::new(["key", "count", "windowStart", "windowEnd"])),
            None => d.declare(Fields::new(["count"])),
        }
    }

    fn execute(&mut self, window: &Window, out: &mut BoltCollector<'_>) {
        let Some(field) = &self.key_field else {
            let mut v = Values::new();
            v.push(Value::Int(window.get().len() as i64));
            // No anchors: the runtime anchors it to the window's tuples.
            out.emit(v);
            return;
        };
        let mut keys: BTreeMap<String, Vec<&Tuple>> = BTreeMap::new();
        // The key's position, looked up once per stream.
        let mut at: Option<(usize, Option<usize>)> = None;
        for t in window.get() {
            let src = std::ptr::from_ref(t.source()) as usize;
            let i = match at {
                Some((s, i)) if s == src => i,
                _ => {
                    let i = t.fields().index_of(field);
                    at = Some((src, i));
                    i
                }
            };
            let key = match i.and_then(|i| t.get(i)) {
                Some(v) => match v.as_str() {
                    Some(s) => s.to_owned(),
                    None => v.to_string(),
                },
                None => {
                    out.report_error(&format!(
                        "a tuple from {} has no field {field} (fields {:?}): not counted",
                        t.source_component(),
                        t.fields()
                    ));
                    continue;
                }
            };
            keys.entry(key).or_default().push(t);
        }
        let start = window.start_timestamp().map_or(Value::Null, Value::Int);
        for (key, tuples) in keys {
            let mut v = Values::new();
            v.push(Value::Str(key.into()));
            v.push(Value::Int(tuples.len() as i64));
            v.push(start.clone());
            v.push(Value::Int(window.end_timestamp()));
            out.emit_stream(DEFAULT_STREAM, &tuples, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use topology_api::component::{Bolt, Emission, OutputSink};
    use topology_api::tuple::StreamSource;
    use topology_api::windowed::WindowedBoltAdapter;

    #[derive(Default)]
    struct Record {
        emitted: Vec<(Vec<String>, usize)>,
        acked: usize,
    }

    impl OutputSink for Record {
        fn emit(&mut self, e: Emission<'_>, _: Option<&mut Vec<u32>>) {
            let v = e.values.to_values().iter().map(|v| v.to_string()).collect();
            self.emitted.push((v, e.anchors.len()));
        }
        fn ack(&mut self, _: &Tuple) {
            self.acked += 1;
        }
        fn fail(&mut self, _: &Tuple) {}
        fn report_error(&mut self, _: &str) {}
    }

    fn args(methods: Vec<(&str, Vec<serde_json::Value>)>) -> ComponentArgs {
        ComponentArgs {
            config_methods: methods
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a))
                .collect(),
            ..ComponentArgs::default()
        }
    }

    fn count(n: u64) -> serde_json::Value {
        json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Count", "constructorArgs": [n]})
    }

    fn adapter(a: &ComponentArgs) -> WindowedBoltAdapter {
        WindowedBoltAdapter::new(Box::new(WindowCountBolt::from_args(a).unwrap()), a).unwrap()
    }

    #[test]
    fn sliding_count_window_emits_every_slide_and_acks_as_tuples_expire() {
        let mut b = adapter(&args(vec![("withWindow", vec![count(5), count(3)])]));
        let src = StreamSource::intern("w", "default", &Fields::new(["word"]));
        let mut rec = Record::default();
        for i in 0..10 {
            let t = Tuple::new(src, 1, topology_api::values![i]);
            b.execute(&t, &mut BoltCollector::new(&mut rec));
        }
        // Windows after tuples 3, 6, 9: sizes 3, 5, 5, each anchored to the whole window.
        let sizes: Vec<(String, usize)> = rec
            .emitted
            .iter()
            .map(|(v, a)| (v[0].clone(), *a))
            .collect();
        assert_eq!(sizes, [("3".into(), 3), ("5".into(), 5), ("5".into(), 5)]);
        // Expired: tuple 0 at the second window, 1-3 at the third.
        assert_eq!(rec.acked, 4);
        b.poll(&mut BoltCollector::new(&mut rec), true);
        assert_eq!(rec.acked, 10, "the rest when the input ends");
    }

    #[test]
    fn event_time_windows_count_per_key() {
        let dur = |ms: u64| json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Duration", "constructorArgs": [ms]});
        let mut a = args(vec![
            ("withTumblingWindow", vec![dur(10)]),
            ("withTimestampField", vec![json!("ts")]),
            ("withLag", vec![dur(5)]),
            ("withLateTupleStream", vec![json!("late")]),
        ]);
        a.properties.insert("keyField".into(), json!("key"));
        let mut b = adapter(&a);
        let src = StreamSource::intern("e", "default", &Fields::new(["ts", "key"]));
        let mut rec = Record::default();
        for (ts, k) in [
            (1, "a"),
            (4, "b"),
            (3, "a"),
            (12, "a"),
            (9, "b"),
            (17, "b"),
            (2, "a"),
            (30, "a"),
        ] {
            let t = Tuple::new(src, 1, topology_api::values![ts as i64, k]);
            b.execute(&t, &mut BoltCollector::new(&mut rec));
        }
        b.poll(&mut BoltCollector::new(&mut rec), true);
        let rows: Vec<String> = rec.emitted.iter().map(|(v, _)| v.join(" ")).collect();
        assert_eq!(
            rows,
            [
                // Watermark 17 - 5 = 12 > 10: (0, 10] fires; then 2 is late (2 < 12).
                "a 2 0 10",
                "b 2 0 10",
                "[2, a]",
                // The rest when the input ends.
                "a 1 10 20",
                "b 1 10 20",
                "a 1 20 30",
            ]
        );
        assert_eq!(rec.acked, 8);
    }

    #[test]
    fn window_arguments_are_checked() {
        let duration = json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Duration", "constructorArgs": [10]});
        let e = WindowCountBolt::from_args(&args(vec![("withWindow", vec![duration, count(1)])]))
            .expect_err("refused");
        assert!(e.to_string().contains("counts sliding by counts"), "{e}");
        let e = WindowCountBolt::from_args(&args(vec![("withFoo", vec![json!(1)])]))
            .expect_err("refused");
        assert!(e.to_string().contains("withTumblingWindow"), "{e}");
    }
}
