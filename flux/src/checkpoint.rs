//! Storm's checkpoint wiring of a topology with stateful bolts (docs/state.md): the system
//! spout `$checkpointspout` (one task) and a `$checkpoint` stream (ALL grouping) along every
//! stream of the topology. Storm sends it from `$checkpointspout` straight to the bolts that read
//! spouts; Gale sends it to the data spouts, which pass it on in line with their tuples, so a
//! checkpoint also records where each spout is (exactly-once).

use crate::model::{ComponentDef, StreamDef, Topology};
use std::collections::BTreeSet;
use topology_api::checkpoint::{
    CHECKPOINT_COMPONENT, CHECKPOINT_FIELDS, CHECKPOINT_SPOUT_CLASS, CHECKPOINT_STREAM,
};
use topology_api::{ComponentArgs, Fields, Grouping, StreamDecl};

/// Adds the checkpoint spout and streams. Idempotent: a topology already wired is unchanged.
pub fn wire(t: &mut Topology) {
    if t.component(CHECKPOINT_COMPONENT).is_some() {
        return;
    }
    let decl = || StreamDecl {
        name: CHECKPOINT_STREAM.to_owned(),
        fields: Fields::new(CHECKPOINT_FIELDS),
        direct: false,
    };
    let mut edges: BTreeSet<(String, String)> = t
        .streams
        .iter()
        .map(|s| (s.from.clone(), s.to.clone()))
        .collect();
    for s in &t.spouts {
        edges.insert((CHECKPOINT_COMPONENT.to_owned(), s.id.clone()));
    }
    for c in t.spouts.iter_mut().chain(t.bolts.iter_mut()) {
        c.outputs.retain(|o| o.name != CHECKPOINT_STREAM);
        c.outputs.push(decl());
    }
    t.spouts.push(ComponentDef {
        id: CHECKPOINT_COMPONENT.to_owned(),
        class_name: CHECKPOINT_SPOUT_CLASS.to_owned(),
        is_spout: true,
        parallelism: 1,
        num_tasks: 1,
        args: ComponentArgs::default(),
        outputs: vec![decl()],
    });
    for (from, to) in edges {
        t.streams.push(StreamDef {
            name: Some(format!("{from} --{CHECKPOINT_STREAM}--> {to}")),
            from,
            to,
            stream_id: CHECKPOINT_STREAM.to_owned(),
            grouping: Grouping::All,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Substitutions, load_bytes};
    use topology_api::Registry;

    #[test]
    fn every_bolt_gets_checkpoints_from_what_it_reads() {
        let yaml = "name: t\nspouts: [{id: s, className: TestWordSpout}]\nbolts: [{id: a, className: LogInfoBolt}, {id: b, className: LogInfoBolt}]\nstreams: [{from: s, to: a, grouping: {type: SHUFFLE}}, {from: a, to: b, grouping: {type: SHUFFLE}}, {from: s, to: b, grouping: {type: SHUFFLE}}]\n";
        let reg = <Registry as components::Builtins>::with_builtins();
        let mut t = load_bytes(
            "t.yaml",
            yaml.as_bytes(),
            &reg,
            &Substitutions::default(),
            &|_| None,
        )
        .expect("valid")
        .topology;
        wire(&mut t);
        wire(&mut t);
        let cp: Vec<(&str, &str)> = t
            .streams
            .iter()
            .filter(|s| s.stream_id == CHECKPOINT_STREAM)
            .map(|s| (s.from.as_str(), s.to.as_str()))
            .collect();
        assert_eq!(
            cp,
            [
                ("$checkpointspout", "s"),
                ("a", "b"),
                ("s", "a"),
                ("s", "b")
            ]
        );
        assert_eq!(
            t.spouts
                .iter()
                .filter(|s| s.id == CHECKPOINT_COMPONENT)
                .count(),
            1
        );
        assert!(
            t.bolts
                .iter()
                .all(|b| b.output(CHECKPOINT_STREAM).is_some())
        );
    }
}
