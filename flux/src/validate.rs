//! One validation pass over the located YAML tree: every problem is collected, each with its line
//! and column, and a [`Topology`] is returned only when there are none.

use super::model::{ComponentDef, StreamDef, Topology, keys};
use super::node::{Node, NodeValue, Pos, key_text};
use std::collections::{BTreeMap, BTreeSet};
use topology_api::component::{ComponentArgs, OutputDeclarer};
use topology_api::grouping::Grouping;
use topology_api::registry::{Factory, Registry};
use topology_api::tuple::DEFAULT_STREAM;

/// A problem at a position of the (substituted) YAML text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "config",
    "spouts",
    "bolts",
    "streams",
    "includes",
    "components",
];
const TOP_UNSUPPORTED: &[(&str, &str)] = &[(
    "topologySource",
    "Flux `topologySource` (a Java topology class) is not supported by Gale; declare `spouts`, `bolts` and `streams` in YAML",
)];
const COMPONENT_KEYS: &[&str] = &[
    "id",
    "className",
    "parallelism",
    "numTasks",
    "constructorArgs",
    "properties",
    "configMethods",
];
const COMPONENT_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "factory",
        "Flux `factory` (a Java factory method) is not supported by Gale; use `className`",
    ),
    (
        "factoryArgs",
        "Flux `factoryArgs` are not supported by Gale; use `constructorArgs`",
    ),
];
const STREAM_KEYS: &[&str] = &["name", "id", "from", "to", "grouping"];
const GROUPING_KEYS: &[&str] = &["type", "args", "streamId"];
const GROUPING_UNSUPPORTED: &[(&str, &str)] = &[(
    "customClass",
    "custom groupings (`customClass`, a Java class) are not supported by Gale; use one of the built-in grouping types",
)];

/// Classes this process cannot construct but others can (Nimbus validating a topology whose
/// classes only the supervisors' binaries have): a component of one of these `classes` is
/// accepted when the submitter's own validated topology has a component of that id, kind and
/// class, and its declared streams are taken from there.
#[derive(Clone, Debug, Default)]
pub struct Foreign {
    /// Names (classes and aliases) that some other process can construct.
    pub classes: BTreeSet<String>,
    /// The submitter's validated components, by id.
    pub components: BTreeMap<String, ComponentDef>,
    /// The submitter's binary found a stateful bolt among them (its topology has the checkpoint
    /// spout): wire checkpoints when a foreign class is used.
    pub stateful: bool,
}

/// Validates a parsed document against `registry` (and `foreign` classes, if given); on success
/// also returns warnings.
pub fn validate(
    root: &Node,
    registry: &Registry,
    foreign: Option<&Foreign>,
) -> Result<(Topology, Vec<Problem>), Vec<Problem>> {
    let mut c = Checker {
        problems: Vec::new(),
        warnings: Vec::new(),
        failed_ids: BTreeSet::new(),
        objects: BTreeMap::new(),
        foreign: foreign.cloned().unwrap_or_default(),
    };
    let topo = c.topology(root, registry);
    match topo {
        Some(t) if c.problems.is_empty() => Ok((t, c.warnings)),
        _ => {
            let mut p = c.problems;
            p.sort_by_key(|a| a.pos);
            p.dedup();
            Err(p)
        }
    }
}

struct Checker {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// Ids of components that failed their own checks: streams naming them are not reported again.
    failed_ids: BTreeSet<String>,
    /// Flux's top-level `components` (objects `ref`erenced from arguments), as JSON by id.
    objects: BTreeMap<String, serde_json::Value>,
    /// Classes constructed elsewhere (see [`Foreign`]).
    foreign: Foreign,
}

/// A stream entry whose shape passed: what the semantic checks look at.
struct Subscription<'a> {
    name: Option<String>,
    /// `stream "name"` or `stream`, as messages say it.
    label: String,
    from: &'a ComponentDef,
    from_pos: Pos,
    to: &'a ComponentDef,
    stream_id: String,
    grouping: Grouping,
    grouping_pos: Pos,
    stream_id_pos: Pos,
    args_pos: Pos,
}

/// The rules a subscription must meet, each a small function with its own message (as
/// Vector's config checks): every failing check is reported, at the place it concerns.
const SUBSCRIPTION_CHECKS: &[fn(&Subscription<'_>) -> Vec<(Pos, String)>] = &[
    stream_is_declared,
    key_fields_are_declared,
    direct_needs_direct,
];

/// `from` declares the stream. A component that declares no stream at all may still be
/// subscribed to on `default` without key fields (Storm's diamond example; a warning says so).
fn stream_is_declared(s: &Subscription<'_>) -> Vec<(Pos, String)> {
    if s.from.output(&s.stream_id).is_some() {
        return Vec::new();
    }
    if s.from.outputs.is_empty()
        && s.stream_id == DEFAULT_STREAM
        && s.grouping.key_fields().is_empty()
    {
        return Vec::new();
    }
    let declared: Vec<&str> = s.from.outputs.iter().map(|o| o.name.as_str()).collect();
    vec![(
        s.stream_id_pos,
        format!(
            "{}: \"{}\" declares no stream \"{}\" (declared: {})",
            s.label,
            s.from.id,
            s.stream_id,
            if declared.is_empty() {
                "none".to_owned()
            } else {
                declared.join(", ")
            }
        ),
    )]
}

/// A FIELDS (or PARTIAL_KEY) grouping names fields the stream declares.
fn key_fields_are_declared(s: &Subscription<'_>) -> Vec<(Pos, String)> {
    let Some(decl) = s.from.output(&s.stream_id) else {
        return Vec::new();
    };
    s.grouping
        .key_fields()
        .iter()
        .filter(|f| !decl.fields.contains(f))
        .map(|missing| {
            (
                s.args_pos,
                format!(
                    "{}: {} grouping on field \"{missing}\", but stream \"{}\" of \"{}\" declares fields [{}]",
                    s.label,
                    s.grouping.type_name(),
                    s.stream_id,
                    s.from.id,
                    decl.fields
                ),
            )
        })
        .collect()
}

/// DIRECT grouping if and only if the stream is declared direct.
fn direct_needs_direct(s: &Subscription<'_>) -> Vec<(Pos, String)> {
    let Some(decl) = s.from.output(&s.stream_id) else {
        return Vec::new();
    };
    let (label, from, id) = (&s.label, &s.from.id, &s.stream_id);
    let message = match (&s.grouping, decl.direct) {
        (Grouping::Direct, false) => format!(
            "{label}: DIRECT grouping needs a direct stream, and \"{from}\" declares \"{id}\" as a normal stream"
        ),
        (g, true) if *g != Grouping::Direct => format!(
            "{label}: \"{from}\" declares \"{id}\" as a direct stream; only a DIRECT grouping can subscribe to it"
        ),
        _ => return Vec::new(),
    };
    vec![(s.grouping_pos, message)]
}

struct ParsedComponent {
    id: String,
    id_pos: Pos,
    class_name: String,
    class_pos: Pos,
    parallelism: u32,
    num_tasks: u32,
    args: ComponentArgs,
}

impl Checker {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            message: message.into(),
        });
    }

    fn topology(&mut self, root: &Node, registry: &Registry) -> Option<Topology> {
        let map = match &root.value {
            NodeValue::Map(m) => m,
            NodeValue::Null => {
                self.err(
                    root.pos,
                    "the file has no topology in it: expected a mapping with `name`, `spouts`, `bolts` and `streams`",
                );
                return None;
            }
            other => {
                self.err(
                    root.pos,
                    format!(
                        "expected a mapping with `name`, `spouts`, `bolts` and `streams`, found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        };
        self.check_keys(map, TOP_KEYS, TOP_UNSUPPORTED, "the topology");

        let name = self.name(root);
        let config = root
            .get("config")
            .map(|n| self.config(n))
            .unwrap_or_default();

        if let Some(objects) = root.get("components") {
            self.flux_objects(objects);
        }
        let spouts = self.component_list(root.get("spouts"), "spouts");
        let bolts = self.component_list(root.get("bolts"), "bolts");
        if root.get("spouts").is_none() {
            self.err(
                root.pos,
                "the topology has no `spouts`: it needs at least one spout",
            );
        }

        // Ids: unique, not reserved.
        let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
        for c in spouts.iter().chain(bolts.iter()) {
            if c.id.is_empty() {
                self.err(c.id_pos, "a component id must not be empty");
            } else if c.id.starts_with("__") {
                self.err(
                    c.id_pos,
                    format!("component id \"{}\" starts with \"__\", which is reserved for system components", c.id),
                );
            } else if let Some(problem) = keys::name_problem(&c.id, true) {
                self.err(c.id_pos, format!("component id {:?} {problem}", c.id));
            }
            if let Some(first) = seen.get(c.id.as_str()) {
                let msg = format!(
                    "duplicate component id \"{}\" (first defined at line {}, column {})",
                    c.id, first.line, first.col
                );
                self.err(c.id_pos, msg);
            } else {
                seen.insert(&c.id, c.id_pos);
            }
        }

        let total: u64 = spouts
            .iter()
            .chain(bolts.iter())
            .map(|c| u64::from(c.num_tasks))
            .sum();
        if total > u64::from(keys::MAX_TASKS) {
            self.err(
                root.pos,
                format!(
                    "the topology has {total} tasks in all; Gale's limit is {} (docs/configuration.md)",
                    keys::MAX_TASKS
                ),
            );
        }
        let spouts = self.build_components(spouts, registry, true);
        let bolts = self.build_components(bolts, registry, false);
        let streams = self.streams(root.get("streams"), &spouts, &bolts);
        let mut t = Topology {
            name: name?,
            config,
            spouts,
            bolts,
            streams,
        };
        self.checkpoints(root, registry, &mut t);
        self.windows(root, registry, &t);
        Some(t)
    }

    /// Windowed bolts: the window as Storm checks it (with acking on, a time window's length,
    /// slide and lag within the message timeout; a count window's length and slide within max
    /// spout pending), located at the bolt.
    fn windows(&mut self, root: &Node, registry: &Registry, t: &Topology) {
        let acking = t.acker_executors() > 0;
        let timeout = t.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30);
        let pending = t
            .config
            .get(keys::MAX_SPOUT_PENDING)
            .and_then(|v| v.as_u64());
        for b in &t.bolts {
            if !registry.is_windowed(&b.class_name) {
                continue;
            }
            let at = component_pos(root, "bolts", &b.id).unwrap_or(root.pos);
            match topology_api::window::WindowConfig::from_args(&b.args, &t.config) {
                Err(e) => self.err(at, format!("bolt \"{}\": {e}", b.id)),
                Ok(w) if acking => {
                    if let Some(why) = w.fits(timeout, pending) {
                        self.err(at, format!("bolt \"{}\": {why}", b.id));
                    }
                }
                Ok(_) => {}
            }
        }
    }

    /// A topology with a stateful bolt: its state settings checked, its checkpoint spout and
    /// streams added (docs/state.md).
    fn checkpoints(&mut self, root: &Node, registry: &Registry, t: &mut Topology) {
        let stateful = t.bolts.iter().any(|b| {
            registry.is_stateful(&b.class_name)
                || (self.foreign.stateful && self.foreign.classes.contains(&b.class_name))
        });
        if stateful {
            self.state_config(root, &t.config, registry);
            crate::checkpoint::wire(t);
        }
    }

    /// A topology with stateful bolts: acking on, a known state provider, a JSON provider config.
    fn state_config(
        &mut self,
        root: &Node,
        config: &serde_json::Map<String, serde_json::Value>,
        registry: &Registry,
    ) {
        let at = |key: &str| {
            root.get("config")
                .and_then(|c| c.get(key))
                .map_or(root.pos, |n| n.pos)
        };
        if config.get(keys::ACKER_EXECUTORS).and_then(|v| v.as_u64()) == Some(0) {
            self.err(
                at(keys::ACKER_EXECUTORS),
                "a topology with stateful bolts needs acking (checkpoints are acked tuples): set `topology.acker.executors` to 1 or more, or leave it out",
            );
        }
        if let Some(v) = config.get(keys::STATE_PROVIDER) {
            let name = v.as_str().unwrap_or_default();
            if registry.state_provider(name).is_none() {
                let known: Vec<&str> = registry.state_provider_names().collect();
                self.err(
                    at(keys::STATE_PROVIDER),
                    format!(
                        "`{}`: unknown state provider {v}; known: {}",
                        keys::STATE_PROVIDER,
                        known.join(", ")
                    ),
                );
            }
        }
        if let Some(v) = config.get(keys::STATE_PROVIDER_CONFIG) {
            let ok = v
                .as_str()
                .is_some_and(|s| serde_json::from_str::<serde_json::Value>(s).is_ok())
                || v.is_object();
            if !ok {
                self.err(
                    at(keys::STATE_PROVIDER_CONFIG),
                    format!(
                        "`{}`: expected a JSON object as a string (Storm's form), such as '{{\"jedisPoolConfig\": {{\"host\": \"127.0.0.1\", \"port\": 6379}}}}'",
                        keys::STATE_PROVIDER_CONFIG
                    ),
                );
            }
        }
    }

    fn check_keys(
        &mut self,
        map: &[(Node, Node)],
        allowed: &[&str],
        unsupported: &[(&str, &str)],
        what: &str,
    ) {
        for (k, _) in map {
            let key = key_text(k);
            if allowed.contains(&key.as_str()) && !unsupported.iter().any(|(u, _)| *u == key) {
                continue;
            }
            if let Some((_, why)) = unsupported.iter().find(|(u, _)| *u == key) {
                self.err(k.pos, *why);
                continue;
            }
            let hint = nearest(&key, allowed)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            self.err(
                k.pos,
                format!(
                    "unknown key `{key}` in {what}{hint} (valid keys: {})",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn name(&mut self, root: &Node) -> Option<String> {
        let Some(n) = root.get("name") else {
            self.err(
                root.pos,
                "the topology has no `name`: add `name: \"my-topology\"`",
            );
            return None;
        };
        let s = self.string(n, "`name`")?;
        if s.trim().is_empty() {
            self.err(n.pos, "`name` must not be empty");
            return None;
        }
        if let Some(bad) = s.chars().find(|c| matches!(c, '/' | '.' | ':' | '\\')) {
            self.err(
                n.pos,
                format!(
                    "topology name \"{s}\" contains '{bad}'; names must not contain / . : or \\"
                ),
            );
            return None;
        }
        if let Some(problem) = keys::name_problem(&s, false) {
            self.err(n.pos, format!("topology name {s:?} {problem}"));
            return None;
        }
        Some(s)
    }

    fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.value {
            NodeValue::Str(s) => Some(s.clone()),
            // Flux (SnakeYAML) turns scalars into strings where a string is expected.
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Bool(b) => Some(b.to_string()),
            other => {
                self.err(
                    n.pos,
                    format!("{what}: expected a string, found {}", other.describe()),
                );
                None
            }
        }
    }

    /// A whole number from `min` to `max` (Gale's documented limits).
    fn int_within(&mut self, n: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let i = self.int(n, what, min)?;
        if i > max {
            self.err(
                n.pos,
                format!(
                    "{what} must be at most {max}, found {i} (Gale's limit; docs/configuration.md)"
                ),
            );
            return None;
        }
        Some(i)
    }

    fn int(&mut self, n: &Node, what: &str, min: i64) -> Option<i64> {
        match &n.value {
            NodeValue::Int(i) if *i >= min => Some(*i),
            NodeValue::Int(i) => {
                self.err(n.pos, format!("{what} must be at least {min}, found {i}"));
                None
            }
            other => {
                let kind = if min >= 1 {
                    "a positive whole number"
                } else {
                    "a whole number"
                };
                self.err(
                    n.pos,
                    format!("{what}: expected {kind}, found {}", other.describe()),
                );
                None
            }
        }
    }

    fn config(&mut self, n: &Node) -> serde_json::Map<String, serde_json::Value> {
        let NodeValue::Map(m) = &n.value else {
            if n.value != NodeValue::Null {
                self.err(
                    n.pos,
                    format!(
                        "`config`: expected a mapping of Storm config keys, found {}",
                        n.value.describe()
                    ),
                );
            }
            return Default::default();
        };
        let mut out = serde_json::Map::new();
        for (k, v) in m {
            let key = key_text(k);
            if let Some((_, min, max)) = keys::INTEGER_KEYS.iter().find(|(name, ..)| *name == key) {
                if v.value == NodeValue::Null && key == keys::MAX_SPOUT_PENDING {
                    continue;
                }
                if let Some(i) = self.int_within(v, &format!("`{key}`"), *min, *max) {
                    out.insert(key, i.into());
                }
                continue;
            }
            if key == keys::GALE_MODE && !matches!(v.as_str(), Some("latency" | "throughput")) {
                self.err(
                    v.pos,
                    format!(
                        "`{key}`: expected latency or throughput, found {}",
                        v.value.describe()
                    ),
                );
                continue;
            }
            if key == keys::MESSAGE_TIMEOUT_RULE
                && !matches!(v.as_str(), Some("queue-aware" | "storm"))
            {
                self.err(
                    v.pos,
                    format!(
                        "`{key}`: expected queue-aware or storm, found {}",
                        v.value.describe()
                    ),
                );
                continue;
            }
            if key == keys::DEBUG && !matches!(v.value, NodeValue::Bool(_)) {
                self.err(
                    v.pos,
                    format!(
                        "`{key}`: expected true or false, found {}",
                        v.value.describe()
                    ),
                );
                continue;
            }
            out.insert(key, v.to_json());
        }
        out
    }

    fn component_list(&mut self, n: Option<&Node>, section: &str) -> Vec<ParsedComponent> {
        let Some(n) = n else { return Vec::new() };
        let items = match &n.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => return Vec::new(),
            other => {
                self.err(
                    n.pos,
                    format!(
                        "`{section}`: expected a list of components, found {}",
                        other.describe()
                    ),
                );
                return Vec::new();
            }
        };
        items
            .iter()
            .filter_map(|item| self.component(item, section))
            .collect()
    }

    fn component(&mut self, n: &Node, section: &str) -> Option<ParsedComponent> {
        let NodeValue::Map(m) = &n.value else {
            self.err(
                n.pos,
                format!("each entry of `{section}` must be a mapping with `id` and `className`, found {}", n.value.describe()),
            );
            return None;
        };
        let what = format!("an entry of `{section}`");
        self.check_keys(m, COMPONENT_KEYS, COMPONENT_UNSUPPORTED, &what);
        let id = match n.get("id") {
            Some(v) => self.string(v, "`id`").map(|s| (s, v.pos)),
            None => {
                self.err(n.pos, format!("{what} has no `id`"));
                None
            }
        };
        let class = match n.get("className") {
            Some(v) => self.string(v, "`className`").map(|s| (s, v.pos)),
            None => {
                self.err(n.pos, format!("{what} has no `className`"));
                None
            }
        };
        let parallelism = match n.get("parallelism") {
            Some(v) => self.int_within(v, "`parallelism`", 1, keys::MAX_EXECUTORS as i64),
            None => Some(1),
        };
        let num_tasks = match n.get("numTasks") {
            Some(v) => self
                .int_within(v, "`numTasks`", 1, keys::MAX_TASKS as i64)
                .map(Some),
            None => Some(None),
        };
        let constructor_args = match n.get("constructorArgs") {
            Some(v) => self.constructor_args(v),
            None => Some(Vec::new()),
        };
        let properties = match n.get("properties") {
            Some(v) => self.properties(v),
            None => Some(BTreeMap::new()),
        };
        let config_methods = match n.get("configMethods") {
            Some(v) => self.config_methods(v),
            None => Some(Vec::new()),
        };
        let (id, id_pos) = id?;
        let Some((class_name, class_pos)) = class else {
            self.failed_ids.insert(id);
            return None;
        };
        let (
            Some(parallelism),
            Some(num_tasks),
            Some(constructor_args),
            Some(properties),
            Some(config_methods),
        ) = (
            parallelism,
            num_tasks,
            constructor_args,
            properties,
            config_methods,
        )
        else {
            self.failed_ids.insert(id);
            return None;
        };
        let parallelism = u32::try_from(parallelism).unwrap_or(u32::MAX);
        let Some(num_tasks) = self.task_count(n, &id, parallelism, num_tasks) else {
            self.failed_ids.insert(id);
            return None;
        };
        Some(ParsedComponent {
            id,
            id_pos,
            class_name,
            class_pos,
            parallelism,
            num_tasks,
            args: ComponentArgs {
                constructor_args,
                properties,
                config_methods,
            },
        })
    }

    /// `numTasks` (default: the parallelism), refused below the parallelism: Storm would
    /// silently run fewer executors, Gale says so.
    fn task_count(
        &mut self,
        n: &Node,
        id: &str,
        parallelism: u32,
        num_tasks: Option<i64>,
    ) -> Option<u32> {
        let Some(t) = num_tasks else {
            return Some(parallelism);
        };
        let t = u32::try_from(t).unwrap_or(u32::MAX);
        if t < parallelism {
            let pos = n.get("numTasks").map(|v| v.pos).unwrap_or(n.pos);
            self.err(
                pos,
                format!(
                    "component \"{id}\": numTasks ({t}) is less than parallelism ({parallelism}); an executor needs at least one task (Storm would silently run only {t} executors)"
                ),
            );
            return None;
        }
        Some(t)
    }

    fn constructor_args(&mut self, n: &Node) -> Option<Vec<serde_json::Value>> {
        let NodeValue::Seq(items) = &n.value else {
            self.err(
                n.pos,
                format!(
                    "`constructorArgs`: expected a list, found {}",
                    n.value.describe()
                ),
            );
            return None;
        };
        let args: Vec<Option<serde_json::Value>> = items.iter().map(|it| self.arg(it)).collect();
        args.into_iter().collect()
    }

    /// An argument: `{ref: id}` / `{reflist: [ids]}` become the referenced `components` entries,
    /// anything else its own value.
    fn arg(&mut self, it: &Node) -> Option<serde_json::Value> {
        let one_key = |k: &str| match &it.value {
            NodeValue::Map(m) if m.len() == 1 => it.get(k),
            _ => None,
        };
        if let Some(r) = one_key("ref") {
            let id = self.string(r, "`ref`")?;
            return self.object(&id, r.pos);
        }
        if let Some(list) = one_key("reflist") {
            let NodeValue::Seq(ids) = &list.value else {
                self.err(list.pos, "`reflist`: expected a list of component ids");
                return None;
            };
            let mut out = Vec::new();
            for idn in ids {
                let id = self.string(idn, "a `reflist` entry")?;
                out.push(self.object(&id, idn.pos)?);
            }
            return Some(serde_json::Value::Array(out));
        }
        Some(it.to_json())
    }

    fn object(&mut self, id: &str, pos: Pos) -> Option<serde_json::Value> {
        match self.objects.get(id) {
            Some(v) => Some(v.clone()),
            None => {
                let known: Vec<&str> = self.objects.keys().map(String::as_str).collect();
                self.err(
                    pos,
                    format!(
                        "`ref` to \"{id}\", which is not in the top-level `components` (known: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        }
    }

    /// Flux's top-level `components`: objects other definitions `ref`erence. Gale keeps each as
    /// JSON (`className`, `constructorArgs`, `properties`, and `configMethods` as `[name, args]`
    /// pairs when it has them); the component that receives one
    /// decides whether it understands it.
    fn flux_objects(&mut self, n: &Node) {
        let NodeValue::Seq(items) = &n.value else {
            if !matches!(n.value, NodeValue::Null) {
                self.err(
                    n.pos,
                    format!(
                        "`components`: expected a list, found {}",
                        n.value.describe()
                    ),
                );
            }
            return;
        };
        for it in items {
            let NodeValue::Map(m) = &it.value else {
                self.err(
                    it.pos,
                    "each entry of `components` must be a mapping with `id` and `className`",
                );
                continue;
            };
            self.check_keys(
                m,
                &[
                    "id",
                    "className",
                    "constructorArgs",
                    "properties",
                    "configMethods",
                ],
                &[],
                "an entry of `components`",
            );
            let Some(id) = it.get("id").and_then(|v| self.string(v, "`id`")) else {
                self.err(it.pos, "an entry of `components` has no `id`");
                continue;
            };
            let Some(class) = it
                .get("className")
                .and_then(|v| self.string(v, "`className`"))
            else {
                self.err(it.pos, format!("component \"{id}\" has no `className`"));
                continue;
            };
            let args = match it.get("constructorArgs") {
                Some(v) => self.constructor_args(v).unwrap_or_default(),
                None => Vec::new(),
            };
            let props = match it.get("properties") {
                Some(v) => self.properties(v).unwrap_or_default(),
                None => BTreeMap::new(),
            };
            let methods = match it.get("configMethods") {
                Some(v) => self.config_methods(v).unwrap_or_default(),
                None => Vec::new(),
            };
            if self.objects.contains_key(&id) {
                self.err(it.pos, format!("duplicate id \"{id}\" in `components`"));
                continue;
            }
            let mut obj = serde_json::json!({"className": class, "constructorArgs": args, "properties": props});
            // As (name, args) pairs, the shape `ComponentArgs::config_methods` has.
            if !methods.is_empty() {
                obj["configMethods"] = serde_json::json!(methods);
            }
            self.objects.insert(id, obj);
        }
    }

    /// Flux `configMethods`: a list of `{name, args}`.
    fn config_methods(&mut self, n: &Node) -> Option<Vec<(String, Vec<serde_json::Value>)>> {
        let NodeValue::Seq(items) = &n.value else {
            self.err(
                n.pos,
                format!(
                    "`configMethods`: expected a list of {{name, args}}, found {}",
                    n.value.describe()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for it in items {
            let NodeValue::Map(m) = &it.value else {
                self.err(
                    it.pos,
                    "each config method must be `{name: ..., args: [...]}`",
                );
                return None;
            };
            self.check_keys(m, &["name", "args"], &[], "a config method");
            let name = self.string(it.get("name")?, "config method `name`")?;
            let args = match it.get("args") {
                Some(a) => self.constructor_args(a)?,
                None => Vec::new(),
            };
            out.push((name, args));
        }
        Some(out)
    }

    fn properties(&mut self, n: &Node) -> Option<BTreeMap<String, serde_json::Value>> {
        let mut out = BTreeMap::new();
        match &n.value {
            // Flux's form: a list of {name, value}.
            NodeValue::Seq(items) => {
                for it in items {
                    let NodeValue::Map(m) = &it.value else {
                        self.err(
                            it.pos,
                            format!(
                                "each property must be `{{name: ..., value: ...}}`, found {}",
                                it.value.describe()
                            ),
                        );
                        continue;
                    };
                    self.check_keys(m, &["name", "value", "ref"], &[], "a property");
                    let Some(name) = it.get("name") else {
                        self.err(it.pos, "a property has no `name`");
                        continue;
                    };
                    let Some(name) = self.string(name, "property `name`") else {
                        continue;
                    };
                    let value = match (it.get("value"), it.get("ref")) {
                        (_, Some(r)) => {
                            let Some(id) = self.string(r, "`ref`") else {
                                continue;
                            };
                            let Some(v) = self.object(&id, r.pos) else {
                                continue;
                            };
                            v
                        }
                        (Some(v), None) => v.to_json(),
                        (None, None) => serde_json::Value::Null,
                    };
                    out.insert(name, value);
                }
            }
            // Gale also accepts a plain mapping.
            NodeValue::Map(m) => {
                for (k, v) in m {
                    out.insert(key_text(k), v.to_json());
                }
            }
            NodeValue::Null => {}
            other => {
                self.err(
                    n.pos,
                    format!(
                        "`properties`: expected a list of {{name, value}}, found {}",
                        other.describe()
                    ),
                );
                return None;
            }
        }
        Some(out)
    }

    fn build_components(
        &mut self,
        parsed: Vec<ParsedComponent>,
        registry: &Registry,
        spouts: bool,
    ) -> Vec<ComponentDef> {
        let section = if spouts { "spouts" } else { "bolts" };
        let mut out = Vec::new();
        for p in parsed {
            if registry.resolve(&p.class_name).is_none()
                && let Some(def) = self.foreign_component(&p, spouts)
            {
                out.push(def);
                continue;
            }
            let Some((canonical, factory)) = registry.resolve(&p.class_name) else {
                let mut known: Vec<&str> = registry
                    .class_names()
                    .chain(self.foreign.classes.iter().map(String::as_str))
                    .collect();
                known.sort_unstable();
                known.dedup();
                let hint = nearest(&p.class_name, &known)
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                self.err(
                    p.class_pos,
                    format!(
                        "component \"{}\": unknown className \"{}\"{hint} (known: {}; Storm's Java names of these are accepted too)",
                        p.id,
                        p.class_name,
                        known.join(", ")
                    ),
                );
                self.failed_ids.insert(p.id);
                continue;
            };
            if !p.args.config_methods.is_empty() && !registry.takes_config_methods(canonical) {
                let pos = p.class_pos;
                self.err(
                    pos,
                    format!(
                        "component \"{}\": {} takes no `configMethods` (Java method calls); set `properties` instead",
                        p.id, p.class_name
                    ),
                );
                self.failed_ids.insert(p.id);
                continue;
            }
            let mut declarer = OutputDeclarer::new();
            let built = match (factory, spouts) {
                (Factory::Spout(f), true) => {
                    f(&p.args).map(|s| s.declare_output_fields(&mut declarer))
                }
                (Factory::Bolt(f), false) => {
                    f(&p.args).map(|b| b.declare_output_fields(&mut declarer))
                }
                (f, _) => {
                    self.err(
                        p.class_pos,
                        format!(
                            "component \"{}\": \"{}\" is a {}, so it cannot be listed under `{section}`",
                            p.id,
                            p.class_name,
                            f.kind()
                        ),
                    );
                    self.failed_ids.insert(p.id);
                    continue;
                }
            };
            if let Err(e) = built {
                self.err(
                    p.id_pos,
                    format!("component \"{}\" ({}): {e}", p.id, p.class_name),
                );
                self.failed_ids.insert(p.id);
                continue;
            }
            out.push(ComponentDef {
                id: p.id,
                class_name: canonical.to_owned(),
                is_spout: spouts,
                parallelism: p.parallelism,
                num_tasks: p.num_tasks,
                args: p.args,
                outputs: declarer.into_streams(),
            });
        }
        out
    }

    /// A component whose class only other processes have: accepted as the submitter declared it
    /// (id, kind and class must match), with the submitted arguments.
    fn foreign_component(&self, p: &ParsedComponent, spouts: bool) -> Option<ComponentDef> {
        if !self.foreign.classes.contains(&p.class_name) {
            return None;
        }
        let d = self.foreign.components.get(&p.id)?;
        if d.is_spout != spouts {
            return None;
        }
        Some(ComponentDef {
            id: p.id.clone(),
            class_name: d.class_name.clone(),
            is_spout: spouts,
            parallelism: p.parallelism,
            num_tasks: p.num_tasks,
            args: p.args.clone(),
            outputs: d.outputs.clone(),
        })
    }

    fn streams(
        &mut self,
        n: Option<&Node>,
        spouts: &[ComponentDef],
        bolts: &[ComponentDef],
    ) -> Vec<StreamDef> {
        let Some(n) = n else { return Vec::new() };
        let items = match &n.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => return Vec::new(),
            other => {
                self.err(
                    n.pos,
                    format!(
                        "`streams`: expected a list of streams, found {}",
                        other.describe()
                    ),
                );
                return Vec::new();
            }
        };
        let all: Vec<&ComponentDef> = spouts.iter().chain(bolts.iter()).collect();
        let failed = self.failed_ids.clone();
        let mut known: Vec<&str> = all
            .iter()
            .map(|c| c.id.as_str())
            .chain(failed.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        let mut out: Vec<StreamDef> = Vec::new();
        let mut seen = BTreeSet::new();
        for it in items {
            let Some(sub) = self.subscription(it, &all, &known) else {
                continue;
            };
            let problems: Vec<(Pos, String)> = SUBSCRIPTION_CHECKS
                .iter()
                .flat_map(|check| check(&sub))
                .collect();
            let ok = problems.is_empty();
            for (pos, message) in problems {
                self.err(pos, message);
            }
            if !ok {
                continue;
            }
            let key = (
                sub.from.id.clone(),
                sub.to.id.clone(),
                sub.stream_id.clone(),
            );
            if !seen.insert(key) {
                self.err(it.pos, format!("{}: \"{}\" already subscribes to stream \"{}\" of \"{}\"; a component subscribes to a stream once", sub.label, sub.to.id, sub.stream_id, sub.from.id));
                continue;
            }
            if sub.from.outputs.is_empty() {
                // Storm's Flux files chain terminal bolts (LogInfoBolt -> LogInfoBolt, in its
                // diamond example): a subscription to the default stream of a component that
                // declares no stream at all is kept, with a warning that it carries nothing.
                self.warnings.push(Problem {
                    pos: sub.from_pos,
                    message: format!("{}: \"{}\" declares no output stream, so \"{}\" will receive nothing from it", sub.label, sub.from.id, sub.to.id),
                });
            }
            out.push(StreamDef {
                name: sub.name,
                from: sub.from.id.clone(),
                to: sub.to.id.clone(),
                stream_id: sub.stream_id,
                grouping: sub.grouping,
            });
        }
        out
    }

    /// One entry of `streams`, its shape checked and its ends resolved; the semantic rules are
    /// [`SUBSCRIPTION_CHECKS`].
    fn subscription<'a>(
        &mut self,
        it: &'a Node,
        all: &[&'a ComponentDef],
        known: &[&str],
    ) -> Option<Subscription<'a>> {
        let NodeValue::Map(m) = &it.value else {
            self.err(
                it.pos,
                format!(
                    "each stream must be a mapping with `from`, `to` and `grouping`, found {}",
                    it.value.describe()
                ),
            );
            return None;
        };
        self.check_keys(m, STREAM_KEYS, &[], "a stream");
        let name = it.get("name").and_then(|v| self.string(v, "stream `name`"));
        let label = name
            .clone()
            .map(|n| format!("stream \"{n}\""))
            .unwrap_or_else(|| "stream".into());
        let from = self.endpoint(it, "from", &label, all, known);
        let to = self.endpoint(it, "to", &label, all, known);
        if let Some((to_c, pos)) = &to
            && to_c.is_spout
        {
            // Reported even when the rest of the entry is broken.
            self.err(
                *pos,
                format!(
                    "{label}: cannot go into \"{}\": it is a spout, and spouts take no input",
                    to_c.id
                ),
            );
        }
        let Some(g) = it.get("grouping") else {
            self.err(
                it.pos,
                format!("{label} has no `grouping` (e.g. `grouping: {{type: SHUFFLE}}`)"),
            );
            return None;
        };
        let (grouping, stream_id, grouping_pos) = self.grouping(g, &label)?;
        let ((from, from_pos), (to, _)) = (from?, to?);
        if to.is_spout {
            return None;
        }
        Some(Subscription {
            name,
            label,
            from,
            from_pos,
            to,
            stream_id,
            grouping,
            grouping_pos,
            stream_id_pos: g.get("streamId").map(|v| v.pos).unwrap_or(from_pos),
            args_pos: g.get("args").map(|v| v.pos).unwrap_or(grouping_pos),
        })
    }

    fn endpoint<'a>(
        &mut self,
        it: &Node,
        key: &str,
        label: &str,
        all: &[&'a ComponentDef],
        known: &[&str],
    ) -> Option<(&'a ComponentDef, Pos)> {
        let Some(v) = it.get(key) else {
            self.err(it.pos, format!("{label} has no `{key}`"));
            return None;
        };
        let id = self.string(v, &format!("`{key}`"))?;
        match all.iter().find(|c| c.id == id) {
            Some(c) => Some((c, v.pos)),
            None if self.failed_ids.contains(&id) => None,
            None => {
                // A component that failed its own checks is not reported twice.
                let hint = nearest(&id, known)
                    .map(|n| format!("; did you mean \"{n}\"?"))
                    .unwrap_or_default();
                self.err(
                    v.pos,
                    format!(
                        "{label}: unknown component \"{id}\" in `{key}`{hint} (known: {})",
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn grouping(&mut self, g: &Node, label: &str) -> Option<(Grouping, String, Pos)> {
        let NodeValue::Map(m) = &g.value else {
            self.err(
                g.pos,
                format!(
                    "{label}: `grouping` must be a mapping like `{{type: SHUFFLE}}`, found {}",
                    g.value.describe()
                ),
            );
            return None;
        };
        self.check_keys(m, GROUPING_KEYS, GROUPING_UNSUPPORTED, "a grouping");
        let stream_id = match g.get("streamId") {
            Some(v) => self.string(v, "`streamId`")?,
            None => DEFAULT_STREAM.to_owned(),
        };
        let Some(t) = g.get("type") else {
            self.err(
                g.pos,
                format!(
                    "{label}: the grouping has no `type` (one of {})",
                    Grouping::TYPE_NAMES.join(", ")
                ),
            );
            return None;
        };
        let ty = self.string(t, "grouping `type`")?;
        let args = match g.get("args") {
            Some(a) => match &a.value {
                NodeValue::Seq(items) => {
                    let mut v = Vec::new();
                    for i in items {
                        v.push(self.string(i, "grouping `args`")?);
                    }
                    Some((v, a.pos))
                }
                NodeValue::Null => None,
                other => {
                    self.err(
                        a.pos,
                        format!(
                            "grouping `args`: expected a list of field names, found {}",
                            other.describe()
                        ),
                    );
                    return None;
                }
            },
            None => None,
        };
        let needs_fields = |c: &mut Self, name: &str| -> Option<Vec<String>> {
            match &args {
                Some((a, _)) if !a.is_empty() => Some(a.clone()),
                _ => {
                    c.err(t.pos, format!("{label}: {name} grouping needs `args` with the field names to group on, e.g. `args: [\"word\"]`"));
                    None
                }
            }
        };
        let grouping = match ty.to_ascii_uppercase().as_str() {
            "SHUFFLE" => Grouping::Shuffle,
            "FIELDS" => Grouping::Fields(needs_fields(self, "FIELDS")?),
            "PARTIAL_KEY" => Grouping::PartialKey(needs_fields(self, "PARTIAL_KEY")?),
            "ALL" => Grouping::All,
            "GLOBAL" => Grouping::Global,
            "NONE" => Grouping::None,
            "DIRECT" => Grouping::Direct,
            "LOCAL_OR_SHUFFLE" => Grouping::LocalOrShuffle,
            "CUSTOM" => {
                self.err(t.pos, format!("{label}: CUSTOM groupings (Java classes) are not supported by Gale (valid: {})", Grouping::TYPE_NAMES.join(", ")));
                return None;
            }
            _ => {
                let hint = nearest(&ty.to_ascii_uppercase(), Grouping::TYPE_NAMES)
                    .map(|n| format!("; did you mean {n}?"))
                    .unwrap_or_default();
                self.err(
                    t.pos,
                    format!(
                        "{label}: unknown grouping type \"{ty}\"{hint} (valid: {})",
                        Grouping::TYPE_NAMES.join(", ")
                    ),
                );
                return None;
            }
        };
        if let Some((a, pos)) = &args
            && grouping.key_fields().is_empty()
            && !a.is_empty()
        {
            self.err(
                *pos,
                format!("{label}: {} grouping takes no `args`", grouping.type_name()),
            );
        }
        Some((grouping, stream_id, t.pos))
    }
}

/// The candidate closest to `word` (edit distance at most a third of its length, or same letters
/// ignoring case), for "did you mean" hints.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lw = word.to_lowercase();
    if let Some(c) = candidates.iter().find(|c| c.to_lowercase() == lw) {
        return Some(c);
    }
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(&lw, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Where the component `id` of `section` (`spouts` / `bolts`) is defined.
fn component_pos(root: &Node, section: &str, id: &str) -> Option<crate::node::Pos> {
    let crate::node::NodeValue::Seq(items) = &root.get(section)?.value else {
        return None;
    };
    items
        .iter()
        .find(|n| n.get("id").and_then(Node::as_str) == Some(id))
        .map(|n| n.get("id").map_or(n.pos, |i| i.pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_table() {
        let keys = ["parallelism", "numTasks", "className", "id"];
        assert_eq!(nearest("paralelism", &keys), Some("parallelism"));
        assert_eq!(nearest("classname", &keys), Some("className"));
        assert_eq!(nearest("numtask", &keys), Some("numTasks"));
        assert_eq!(nearest("zzzzzz", &keys), None);
    }
}
