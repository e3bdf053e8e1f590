//! The compact form assignments are stored in: every record reads back as written, the first
//! (per-executor) form still reads, and a topology of 50,000 executors fits in one node.

use cluster_state::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn encode(r: &AssignmentRecord) -> Vec<u8> {
    rmp_serde::to_vec_named(r).expect("encode")
}

fn decode(b: &[u8]) -> AssignmentRecord {
    rmp_serde::from_slice(b).expect("decode")
}

/// The even scheduler's shape: `executors` single-task executors dealt round-robin over
/// `supervisors` x `ports` slots, all started at one time but the first `moved`.
fn spread(executors: u32, supervisors: u32, ports: u16, moved: u32) -> AssignmentRecord {
    let slots: Vec<(String, u16)> = (0..supervisors)
        .flat_map(|s| (0..ports).map(move |p| (format!("supervisor-{s:04}"), 6700 + p)))
        .collect();
    let mut r = AssignmentRecord {
        lease_ms: 3750,
        ..Default::default()
    };
    for t in 1..=executors {
        let (sup, port) = &slots[(t as usize - 1) % slots.len()];
        r.executors.push(ExecutorSlot {
            start: t,
            end: t,
            supervisor: sup.clone(),
            port: *port,
        });
        r.hosts.insert(sup.clone(), format!("host-{sup}"));
        r.start_times.insert(
            format!("{t}-{t}"),
            if t <= moved {
                1_800_000_100
            } else {
                1_800_000_000
            },
        );
    }
    r
}

#[test]
fn fifty_thousand_executors_on_four_thousand_slots_fit_in_one_node() {
    let r = spread(50_000, 1_000, 4, 100);
    let bytes = encode(&r);
    assert!(
        bytes.len() < MAX_NODE_BYTES / 2,
        "{} bytes for 50,000 executors",
        bytes.len()
    );
    assert_eq!(decode(&bytes), r);
    // The first form took 48 bytes and more per executor: it would not have fitted.
    println!(
        "50,000 executors, 4,000 slots: {} bytes ({:.1} per executor)",
        bytes.len(),
        bytes.len() as f64 / 50_000.0
    );
}

#[test]
fn records_in_the_first_form_still_read() {
    #[derive(serde::Serialize)]
    struct First {
        executors: Vec<ExecutorSlot>,
        hosts: BTreeMap<String, String>,
        start_times: BTreeMap<String, u64>,
        held: bool,
        lease_ms: u64,
    }
    let r = spread(10, 2, 2, 0);
    let old = First {
        executors: r.executors.clone(),
        hosts: r.hosts.clone(),
        start_times: r.start_times.clone(),
        held: true,
        lease_ms: 7,
    };
    let back = decode(&rmp_serde::to_vec_named(&old).expect("encode"));
    assert_eq!(
        back,
        AssignmentRecord {
            held: true,
            lease_ms: 7,
            ..r
        }
    );
}

fn arb_record() -> impl Strategy<Value = AssignmentRecord> {
    let slot = (0u8..5, 6700u16..6704);
    let exec = (1u32..200, 0u32..3, slot, proptest::option::of(0u64..4));
    (
        proptest::collection::vec(exec, 0..40),
        any::<bool>(),
        0u64..10_000,
    )
        .prop_map(|(rows, held, lease_ms)| {
            let mut r = AssignmentRecord {
                held,
                lease_ms,
                ..Default::default()
            };
            for (start, len, (s, port), time) in rows {
                let sup = format!("s{s}");
                r.hosts.insert(sup.clone(), format!("h{s}"));
                if let Some(t) = time {
                    r.start_times
                        .insert(format!("{start}-{}", start + len), 1_000 + t);
                }
                r.executors.push(ExecutorSlot {
                    start,
                    end: start + len,
                    supervisor: sup,
                    port,
                });
            }
            r
        })
}

proptest! {
    /// Any order, gaps, overlaps and missing start times: what is read is what was written.
    #[test]
    fn every_record_reads_back_as_written(r in arb_record()) {
        let mut want = r.clone();
        // Start times only of executors the record has (others cannot be stored).
        want.start_times.retain(|k, _| {
            r.executors.iter().any(|e| *k == format!("{}-{}", e.start, e.end))
        });
        prop_assert_eq!(decode(&encode(&r)), want);
    }
}
