//! Flux `includes`: other YAML files merged into this one before validation.
//!
//! ```yaml
//! includes:
//!   - resource: false          # true means a Java classpath resource: not available to Gale
//!     file: "common.yaml"      # relative to the including file's folder
//!     override: false          # true: the included definitions replace same-id ones here
//! ```
//!
//! Merging follows Flux: `spouts`, `bolts` and `components` are merged by `id` (an included one is
//! added when this file has no component of that id, and replaces it when `override` is true);
//! `streams` are appended; `config` keys are added when absent and replaced when `override` is
//! true; `name` is taken from an include only when this file has none. Includes nest (an included
//! file may include others) up to [`MAX_DEPTH`] levels; a cycle is an error.

use super::node::{self, Node, NodeValue, Pos};
use super::subst::{self, Substitutions};
use std::path::{Path, PathBuf};

/// How deeply includes may nest.
pub const MAX_DEPTH: usize = 8;
/// Most files one topology may be assembled from.
pub const MAX_FILES: usize = 64;

/// Reads included files; a trait so that validation of text without a folder (Nimbus) can refuse.
pub struct Includer<'a> {
    pub subs: &'a Substitutions,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// File names by `Pos::file` index; index 0 is the including file.
    pub files: Vec<String>,
    /// Problems, located.
    pub problems: Vec<(Pos, String)>,
    /// Substitution warnings from included files.
    pub warnings: Vec<(Pos, String)>,
}

impl Includer<'_> {
    /// Replaces `root`'s `includes` with what they name, merged. `dir` is the including file's
    /// folder (`None`: the text has no folder, so includes cannot be read).
    pub fn expand(&mut self, root: &mut Node, dir: Option<&Path>, stack: &mut Vec<PathBuf>) {
        let NodeValue::Map(entries) = &mut root.value else {
            return;
        };
        let Some(i) = entries
            .iter()
            .position(|(k, _)| k.as_str() == Some("includes"))
        else {
            return;
        };
        let (_, list) = entries.remove(i);
        let items = match list.value {
            NodeValue::Seq(items) => items,
            NodeValue::Null => return,
            other => {
                self.problems.push((
                    list.pos,
                    format!(
                        "`includes` must be a list of {{file, resource, override}}, found {}",
                        other.describe()
                    ),
                ));
                return;
            }
        };
        for item in items {
            if let Some((included, override_)) = self.read_one(&item, dir, stack) {
                merge(root, included, override_);
            }
        }
    }

    fn read_one(
        &mut self,
        item: &Node,
        dir: Option<&Path>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<(Node, bool)> {
        let (file, file_pos, override_) = self.entry(item)?;
        let included = self.load(&file, file_pos, dir, stack)?;
        Some((included, override_))
    }

    /// An `includes` entry's `file` (with its place) and `override`; every wrong key reported.
    fn entry(&mut self, item: &Node) -> Option<(String, Pos, bool)> {
        let NodeValue::Map(m) = &item.value else {
            self.problems.push((
                item.pos,
                format!(
                    "an include must be a mapping with `file` (and `resource`, `override`), found {}",
                    item.value.describe()
                ),
            ));
            return None;
        };
        let mut file = None;
        let mut override_ = false;
        let mut ok = true;
        for (k, v) in m {
            match (k.as_str(), &v.value) {
                (Some("file"), NodeValue::Str(s)) => file = Some((s.clone(), v.pos)),
                (Some("override"), NodeValue::Bool(b)) => override_ = *b,
                (Some("resource"), NodeValue::Bool(false)) => {}
                (Some("resource"), NodeValue::Bool(true)) => {
                    self.problems.push((
                        v.pos,
                        "`resource: true` names a Java classpath resource, which Gale cannot read; give a file path with `resource: false`".into(),
                    ));
                    ok = false;
                }
                (Some(key @ ("file" | "override" | "resource")), other) => {
                    let want = if key == "file" {
                        "a path"
                    } else {
                        "true or false"
                    };
                    self.problems.push((
                        v.pos,
                        format!("include `{key}` must be {want}, found {}", other.describe()),
                    ));
                    ok = false;
                }
                _ => {
                    self.problems.push((
                        k.pos,
                        format!(
                            "unknown include key \"{}\"; an include has `file`, `resource` and `override`",
                            node::key_text(k)
                        ),
                    ));
                    ok = false;
                }
            }
        }
        let Some((file, file_pos)) = file else {
            if ok {
                self.problems
                    .push((item.pos, "this include has no `file`".into()));
            }
            return None;
        };
        if !ok {
            return None;
        }
        Some((file, file_pos, override_))
    }

    /// Reads, substitutes, parses and expands one included file (relative to `dir`), refusing
    /// cycles, too deep nesting and too many files.
    fn load(
        &mut self,
        file: &str,
        file_pos: Pos,
        dir: Option<&Path>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Node> {
        let Some(dir) = dir else {
            self.problems.push((
                file_pos,
                "includes are read from the topology's folder, which this text does not have; `gale submit` and `gale local` read them from disk".into(),
            ));
            return None;
        };
        let path = dir.join(file);
        let canonical = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                self.problems.push((
                    file_pos,
                    format!("cannot read included file {}: {e}", path.display()),
                ));
                return None;
            }
        };
        if stack.contains(&canonical) {
            self.problems.push((
                file_pos,
                format!(
                    "{} includes itself: includes must not form a cycle",
                    path.display()
                ),
            ));
            return None;
        }
        if stack.len() > MAX_DEPTH || self.files.len() >= MAX_FILES {
            self.problems.push((
                file_pos,
                format!(
                    "includes nest deeper than {MAX_DEPTH} or name more than {MAX_FILES} files"
                ),
            ));
            return None;
        }
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(e) => {
                self.problems.push((file_pos, e));
                return None;
            }
        };
        let idx = self.files.len() as u16;
        self.files.push(path.display().to_string());
        let s = subst::substitute(&text, self.subs, self.env);
        let at = |p: Pos| Pos { file: idx, ..p };
        self.warnings
            .extend(s.warnings.iter().map(|(p, m)| (at(*p), m.clone())));
        self.problems
            .extend(s.errors.iter().map(|(p, m)| (at(*p), m.clone())));
        let mut included = match node::parse_in(&s.text, idx) {
            Ok(n) => n,
            Err(e) => {
                self.problems.push((e.pos, e.message));
                return None;
            }
        };
        if !matches!(included.value, NodeValue::Map(_) | NodeValue::Null) {
            self.problems.push((
                included.pos,
                format!(
                    "an included file must be a mapping (spouts, bolts, streams, config), found {}",
                    included.value.describe()
                ),
            ));
            return None;
        }
        stack.push(canonical);
        let sub_dir = path.parent().map(Path::to_path_buf);
        self.expand(&mut included, sub_dir.as_deref(), stack);
        stack.pop();
        Some(included)
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read included file {}: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!(
            "included {} is a folder, not a YAML file",
            path.display()
        ));
    }
    if meta.len() > super::MAX_FILE_BYTES {
        return Err(format!(
            "included {} is {} bytes; topology files are limited to {}",
            path.display(),
            meta.len(),
            super::MAX_FILE_BYTES
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read included file {}: {e}", path.display()))?;
    if bytes.contains(&0) {
        return Err(format!(
            "included {} is a binary file, not YAML",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("included {} is not UTF-8 text", path.display()))?;
    Ok(text.trim_start_matches('\u{feff}').to_owned())
}

fn id_of(n: &Node) -> Option<&str> {
    n.get("id").and_then(Node::as_str)
}

/// Merges `inc` (an included file's mapping) into `root` as Flux does.
fn merge(root: &mut Node, inc: Node, override_: bool) {
    let NodeValue::Map(inc_entries) = inc.value else {
        return;
    };
    if matches!(root.value, NodeValue::Null) {
        root.value = NodeValue::Map(Vec::new());
    }
    let NodeValue::Map(entries) = &mut root.value else {
        return;
    };
    for (k, v) in inc_entries {
        let key = node::key_text(&k);
        let Some(slot) = entries.iter_mut().find(|(ek, _)| node::key_text(ek) == key) else {
            entries.push((k, v));
            continue;
        };
        let existing = &mut slot.1;
        match (key.as_str(), &mut existing.value, v.value) {
            ("spouts" | "bolts" | "components", NodeValue::Seq(mine), NodeValue::Seq(theirs)) => {
                for item in theirs {
                    let same =
                        id_of(&item).and_then(|id| mine.iter().position(|m| id_of(m) == Some(id)));
                    match same {
                        Some(i) if override_ => mine[i] = item,
                        Some(_) => {}
                        None => mine.push(item),
                    }
                }
            }
            ("streams", NodeValue::Seq(mine), NodeValue::Seq(theirs)) => mine.extend(theirs),
            ("config", NodeValue::Map(mine), NodeValue::Map(theirs)) => {
                for (ck, cv) in theirs {
                    let ckey = node::key_text(&ck);
                    match mine.iter().position(|(mk, _)| node::key_text(mk) == ckey) {
                        Some(i) if override_ => mine[i] = (ck, cv),
                        Some(_) => {}
                        None => mine.push((ck, cv)),
                    }
                }
            }
            (_, NodeValue::Null, value) => existing.value = value,
            (_, _, value) if override_ && key != "name" => existing.value = value,
            _ => {}
        }
    }
}
