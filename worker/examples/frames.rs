//! How long the transport takes to encode and decode a frame of word-count tuples, per tuple,
//! without sockets or threads (docs/performance.md, "Cluster"):
//!
//!   cargo run --release -p supervisor --example frames [ROUNDS]

use std::time::Instant;
use topology_api::{Fields, StreamSource, values};
use worker::runtime::Batch;
use worker::transport::{decode_with, encode};

fn batch(words: &[&str], with_count: bool) -> Batch {
    let split = StreamSource::intern("split", "default", &Fields::new(["word"]));
    let count = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
    let born = 1_795_000_000_000_000;
    let mut b = Batch::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let pushed = if with_count {
            b.push(2, count, 1, born, &[], &values![*w, i as i64 * 37])
        } else {
            b.push(2, split, 5, born, &[], &values![*w])
        };
        pushed.expect("a word fits");
    }
    b
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let text = "the quick brown fox jumps over the lazy dog and then some words of ordinary length follow it";
    let words: Vec<&str> = text.split(' ').cycle().take(500).collect();
    for (name, with_count) in [("word", false), ("word,count", true)] {
        let b = batch(&words, with_count);
        let mut frame = Vec::new();
        let t = Instant::now();
        for _ in 0..rounds {
            encode(b.clone(), &mut frame).expect("encodes");
        }
        let enc = t.elapsed().as_nanos() as f64 / (rounds * b.len()) as f64;
        // Encoding consumes a batch: the clone (and its drop) is timed alone and taken off.
        let mut clone_ns = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(b.clone());
        }
        let clone = clone_ns.elapsed().as_nanos() as f64 / (rounds * b.len()) as f64;
        clone_ns = Instant::now();
        let body = &frame[4..];
        let src = StreamSource::intern("x", "default", &Fields::new(["word"]));
        let mut n = 0;
        for _ in 0..rounds {
            let out = decode_with(
                body,
                |_, len| Batch::with_capacity(len),
                |out, t| {
                    let _ = out.push_encoded(
                        t.task,
                        src,
                        t.source_task,
                        t.born_us,
                        &t.ack_ids,
                        t.values,
                    );
                },
            )
            .expect("decodes");
            n += out.len();
        }
        let dec = clone_ns.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "frames: tuple={name} bytes_per_tuple={:.1} encode_ns={:.1} decode_ns={dec:.1}",
            frame.len() as f64 / b.len() as f64,
            enc - clone
        );
    }
}
