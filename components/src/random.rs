//! Endless random spouts for demos and tests.

use std::time::{Duration, Instant};
use topology_api::component::{
    ComponentArgs, ComponentError, OutputDeclarer, Spout, SpoutCollector, TopologyContext,
};
use topology_api::rng::Rng;
use topology_api::value::{Fields, Value, Values};

const SENTENCES: &[&str] = &[
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// Endless random sentences from a fixed list, field `sentence`, as fast as they are taken, or at
/// most `ratePerSecond` per task (property) for measurements at a fixed offered rate.
#[derive(Debug)]
pub struct RandomSentenceSpout {
    rng: Rng,
    rate: Option<f64>,
    start: Option<Instant>,
    sent: u64,
}

impl Default for RandomSentenceSpout {
    fn default() -> Self {
        RandomSentenceSpout {
            rng: Rng::seeded(1),
            rate: None,
            start: None,
            sent: 0,
        }
    }
}

impl RandomSentenceSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let rate = match args.properties.get("ratePerSecond") {
            None => None,
            Some(v) => Some(v.as_f64().filter(|r| *r > 0.0).ok_or_else(|| {
                ComponentError::Config(format!(
                    "property \"ratePerSecond\" must be a positive number, found {v}"
                ))
            })?),
        };
        Ok(RandomSentenceSpout {
            rate,
            ..Default::default()
        })
    }
}

impl Spout for RandomSentenceSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["sentence"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.rng = Rng::from_clock(ctx.task_id as u64);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if let Some(rate) = self.rate {
            // Paced against the start time, so the offered rate does not drift.
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if self.sent >= due {
                return;
            }
            self.sent += 1;
        }
        let s = SENTENCES[self.rng.below(SENTENCES.len())];
        let mut v = Values::new();
        v.push(Value::from(s));
        out.emit(v);
    }
}

const WORDS: &[&str] = &["nathan", "mike", "jackson", "golda", "bertels"];

/// Storm's `TestWordSpout`: a random word (field `word`) every `intervalMillis` (default 100, as
/// Storm's sleeps 100 ms); it never blocks the executor while waiting.
#[derive(Debug)]
pub struct TestWordSpout {
    rng: Rng,
    interval: Duration,
    last: Option<Instant>,
}

impl TestWordSpout {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let ms = match args.properties.get("intervalMillis") {
            None => 100,
            Some(v) => v.as_u64().ok_or_else(|| {
                ComponentError::Config(format!(
                    "property \"intervalMillis\" must be a whole number of milliseconds, found {v}"
                ))
            })?,
        };
        Ok(TestWordSpout {
            rng: Rng::seeded(7),
            interval: Duration::from_millis(ms),
            last: None,
        })
    }
}

impl Spout for TestWordSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["word"]));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.rng = Rng::from_clock(ctx.task_id as u64);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.interval)
        {
            return;
        }
        self.last = Some(now);
        let w = WORDS[self.rng.below(WORDS.len())];
        let mut v = Values::new();
        v.push(Value::from(w));
        out.emit(v);
    }
}
