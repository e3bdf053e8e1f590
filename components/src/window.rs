//! `WindowCountBolt`: Storm's count-based windowed bolt, as Flux's `TestWindowBolt` uses it.

use serde_json::Value as Json;
use std::collections::VecDeque;
use topology_api::component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, OutputDeclarer, TopologyContext,
};
use topology_api::tuple::Tuple;
use topology_api::value::{Fields, Value, Values};

/// Keeps the last `length` tuples and, every `interval` tuples, emits the window's size (field
/// `count`), as Storm's `BaseWindowedBolt` with `Count` windows and Flux's `TestWindowBolt` do.
///
/// The window comes from Flux `configMethods` — `withWindow(length, interval)` (sliding) or
/// `withTumblingWindow(length)` — whose arguments are `BaseWindowedBolt$Count` components (by
/// `ref`) or plain numbers; or from the properties `windowLength` and `slidingInterval`.
/// Time-based windows (`BaseWindowedBolt$Duration`) are refused with a message.
///
/// Acking: each emit is anchored to the tuples that arrived since the previous emit, which are
/// acked right after it (Storm acks a tuple when it slides out of the window instead; with a
/// finite input that keeps the last window's tuples pending until they time out).
pub struct WindowCountBolt {
    length: usize,
    interval: usize,
    window: VecDeque<Tuple<'static>>,
    fresh: Vec<Tuple<'static>>,
}

/// A window size: a plain number, or a Flux `BaseWindowedBolt$Count` component.
fn count_arg(v: &Json, what: &str) -> Result<usize, ComponentError> {
    let bad = |why: String| ComponentError::Config(format!("{what}: {why}"));
    let n = match v {
        Json::Number(n) => n.as_u64(),
        Json::Object(o) => {
            let class = o.get("className").and_then(Json::as_str).unwrap_or("");
            if class.ends_with("$Duration") || class.ends_with(".Duration") {
                return Err(bad(format!(
                    "time-based windows ({class}) are not supported by Gale yet; use BaseWindowedBolt$Count"
                )));
            }
            if !(class.ends_with("$Count") || class.ends_with(".Count") || class == "Count") {
                return Err(bad(format!(
                    "expected a BaseWindowedBolt$Count component, got className \"{class}\""
                )));
            }
            o.get("constructorArgs")
                .and_then(Json::as_array)
                .and_then(|a| a.first())
                .and_then(Json::as_u64)
        }
        _ => None,
    };
    match n {
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n as usize),
        _ => Err(bad(format!("expected a count from 1 to 1000000, got {v}"))),
    }
}

impl WindowCountBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let mut window: Option<(usize, usize)> = None;
        for (name, a) in &args.config_methods {
            window = Some(match (name.as_str(), a.as_slice()) {
                ("withWindow", [len, int]) => (
                    count_arg(len, "withWindow's window length")?,
                    count_arg(int, "withWindow's sliding interval")?,
                ),
                ("withWindow", [len]) | ("withTumblingWindow", [len]) => {
                    let l = count_arg(len, &format!("{name}'s window length"))?;
                    (l, l)
                }
                (other, a) => {
                    return Err(ComponentError::Config(format!(
                        "unknown config method {other} with {} argument(s); WindowCountBolt takes withWindow(length, interval) and withTumblingWindow(length)",
                        a.len()
                    )));
                }
            });
        }
        if let Some(len) = args.properties.get("windowLength") {
            let l = count_arg(len, "property windowLength")?;
            let i = match args.properties.get("slidingInterval") {
                Some(v) => count_arg(v, "property slidingInterval")?,
                None => l,
            };
            window = Some((l, i));
        }
        let (length, interval) = window.ok_or_else(|| {
            ComponentError::Config(
                "no window given: add configMethods withWindow(length, interval) or withTumblingWindow(length), or properties windowLength (and slidingInterval)".into(),
            )
        })?;
        Ok(WindowCountBolt {
            length,
            interval,
            window: VecDeque::with_capacity(length.min(4096) + 1),
            fresh: Vec::new(),
        })
    }
}

impl Bolt for WindowCountBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["count"]));
    }

    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        self.window.push_back(input.to_owned());
        if self.window.len() > self.length {
            self.window.pop_front();
        }
        self.fresh.push(input.to_owned());
        if self.fresh.len() >= self.interval {
            let mut v = Values::new();
            v.push(Value::Int(self.window.len() as i64));
            let anchors: Vec<&Tuple> = self.fresh.iter().collect();
            out.emit_stream(topology_api::tuple::DEFAULT_STREAM, &anchors, v);
            for t in self.fresh.drain(..) {
                out.ack(&t);
            }
        }
    }

    fn auto_ack(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use topology_api::component::{Emission, OutputSink};
    use topology_api::tuple::StreamSource;

    #[derive(Default)]
    struct Record {
        emitted: Vec<(i64, usize)>,
        acked: usize,
    }

    impl OutputSink for Record {
        fn emit(&mut self, e: Emission<'_>, _: Option<&mut Vec<u32>>) {
            let n = e.values.to_values()[0].as_int().unwrap_or(-1);
            self.emitted.push((n, e.anchors.len()));
        }
        fn ack(&mut self, _: &Tuple) {
            self.acked += 1;
        }
        fn fail(&mut self, _: &Tuple) {}
        fn report_error(&mut self, _: &str) {}
    }

    fn args(methods: Vec<(&str, Vec<Json>)>) -> ComponentArgs {
        ComponentArgs {
            config_methods: methods
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a))
                .collect(),
            ..ComponentArgs::default()
        }
    }

    fn count(n: u64) -> Json {
        json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Count", "constructorArgs": [n]})
    }

    #[test]
    fn sliding_count_window_emits_every_interval() {
        let mut b =
            WindowCountBolt::from_args(&args(vec![("withWindow", vec![count(5), count(3)])]))
                .expect("valid");
        let src = StreamSource::intern("w", "default", &Fields::new(["word"]));
        let mut rec = Record::default();
        for i in 0..10 {
            let t = Tuple::new(src, 1, topology_api::values![i]);
            b.execute(&t, &mut BoltCollector::new(&mut rec));
        }
        // Windows after tuples 3, 6, 9: sizes 3, 5, 5; each anchored to the 3 new tuples.
        assert_eq!(rec.emitted, vec![(3, 3), (5, 3), (5, 3)]);
        assert_eq!(rec.acked, 9);
    }

    #[test]
    fn window_arguments_are_checked() {
        let tumbling =
            WindowCountBolt::from_args(&args(vec![("withTumblingWindow", vec![json!(4)])]))
                .expect("plain numbers work");
        assert_eq!((tumbling.length, tumbling.interval), (4, 4));
        let duration = json!({"className": "org.apache.storm.topology.base.BaseWindowedBolt$Duration", "constructorArgs": [10]});
        let e = WindowCountBolt::from_args(&args(vec![("withWindow", vec![duration, count(1)])]))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("time-based"), "{e}");
        let e = WindowCountBolt::from_args(&args(vec![("withLag", vec![json!(1)])]))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("withLag"), "{e}");
        assert!(WindowCountBolt::from_args(&ComponentArgs::default()).is_err());
        assert!(
            WindowCountBolt::from_args(&args(vec![("withWindow", vec![json!(0), json!(1)])]))
                .is_err()
        );
    }
}
