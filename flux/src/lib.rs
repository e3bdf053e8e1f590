//! Flux YAML -> validated [`Topology`].
//!
//! The pipeline is: read the file (refusing binary and oversized input), substitute `${...}`,
//! parse into a located tree (serde-saphyr, with its alias-bomb budget), then one validation pass
//! that collects every problem as `FILE:LINE:COL: message`.

pub mod checkpoint;
pub mod includes;
pub mod layout;
pub mod model;
pub mod node;
pub mod subst;
pub mod validate;

pub use model::{ComponentDef, StreamDef, Topology, keys};
pub use subst::{Substitutions, parse_properties};
pub use validate::Foreign;

use node::Pos;
use std::fmt;
use std::path::{Path, PathBuf};
use topology_api::registry::Registry;

/// Largest topology file Gale reads.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// One problem in a topology file, printed as `FILE:LINE:COL: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl SpecError {
    fn at(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        SpecError {
            file: file.to_owned(),
            line: pos.line.max(1),
            col: pos.col.max(1),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found in one file.
#[derive(Debug, thiserror::Error)]
pub struct ValidationErrors(pub Vec<SpecError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        let n = self.0.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

/// Why a topology file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read topology file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read properties file {path} (given with --filter): {source}")]
    ReadFilter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
}

/// A loaded topology and what it was loaded from.
#[derive(Debug)]
pub struct Loaded {
    pub topology: Topology,
    /// Unresolved `${...}` placeholders and similar notes, located.
    pub warnings: Vec<SpecError>,
    /// Where shell components run and relative paths resolve (docs/contract.md §5).
    pub resources_dir: PathBuf,
}

/// Reads a `.properties` file for `--filter`.
pub fn read_filter(path: &Path) -> Result<std::collections::BTreeMap<String, String>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::ReadFilter {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_properties(&text))
}

/// Loads and validates a topology file.
pub fn load_file(
    path: &Path,
    registry: &Registry,
    subs: &Substitutions,
) -> Result<Loaded, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let file = path.display().to_string();
    if meta.is_dir() {
        return Err(ValidationErrors(vec![SpecError::at(
            &file,
            Pos::default(),
            "this is a folder; give the path of a topology .yaml file",
        )])
        .into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ValidationErrors(vec![SpecError::at(
            &file,
            Pos::default(),
            format!(
                "the file is {} bytes; topology files are limited to {} bytes",
                meta.len(),
                MAX_FILE_BYTES
            ),
        )])
        .into());
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut loaded = load_bytes_in(
        &file,
        &bytes,
        registry,
        subs,
        &|k| std::env::var(k).ok(),
        Some(&dir),
    )?;
    let res = dir.join("resources");
    loaded.resources_dir = if res.is_dir() { res } else { dir };
    Ok(loaded)
}

/// Validates topology text; `file` names it in messages. Text without a folder cannot use
/// Flux `includes` (see [`load_bytes_in`]).
pub fn load_bytes(
    file: &str,
    bytes: &[u8],
    registry: &Registry,
    subs: &Substitutions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ValidationErrors> {
    load_bytes_in(file, bytes, registry, subs, env, None)
}

/// Validates topology text whose `includes` are read relative to `dir`.
pub fn load_bytes_in(
    file: &str,
    bytes: &[u8],
    registry: &Registry,
    subs: &Substitutions,
    env: &dyn Fn(&str) -> Option<String>,
    dir: Option<&Path>,
) -> Result<Loaded, ValidationErrors> {
    let parsed = parse_document(file, bytes, subs, env, dir)?;
    validate_parsed(parsed, registry, None)
}

/// Validates a submitted topology (substituted, includes merged) whose classes this process may
/// not have: a class in `foreign.classes` that `registry` lacks is accepted as the submitter's
/// own validation declared it (Nimbus, for classes only the supervisors' binaries have).
pub fn load_submitted(
    file: &str,
    bytes: &[u8],
    registry: &Registry,
    foreign: &validate::Foreign,
) -> Result<Loaded, ValidationErrors> {
    let subs = Substitutions::default();
    let no_env = |_: &str| None;
    let parsed = parse_document(file, bytes, &subs, &no_env, None)?;
    validate_parsed(parsed, registry, Some(foreign))
}

fn validate_parsed(
    (root, inc, mut errors): (node::Node, includes::Includer<'_>, Vec<SpecError>),
    registry: &Registry,
    foreign: Option<&validate::Foreign>,
) -> Result<Loaded, ValidationErrors> {
    let at = |pos: Pos, m: String| SpecError::at(file_name(&inc.files, pos), pos, m);
    let mut warnings: Vec<SpecError> = inc.warnings.into_iter().map(|(p, m)| at(p, m)).collect();
    match validate::validate(&root, registry, foreign) {
        Ok((topology, notes)) if errors.is_empty() => {
            warnings.extend(notes.into_iter().map(|p| at(p.pos, p.message)));
            Ok(Loaded {
                topology,
                warnings,
                resources_dir: PathBuf::from("."),
            })
        }
        Ok(_) => Err(ValidationErrors(errors)),
        Err(problems) => {
            errors.extend(problems.into_iter().map(|p| at(p.pos, p.message)));
            Err(ValidationErrors(errors))
        }
    }
}

/// The topology document in `path` with its `includes` merged in, as text Gale can parse again
/// (JSON, which is YAML): what `gale submit` sends, since Nimbus has no access to the included
/// files. Substitution is applied. The file's own text when it has no includes.
pub fn expanded_text(
    path: &Path,
    subs: &Substitutions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = path.display().to_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (root, inc, errors) = parse_document(&file, &bytes, subs, env, Some(&dir))?;
    if !errors.is_empty() {
        return Err(ValidationErrors(errors).into());
    }
    if inc.files.len() == 1 {
        let text = String::from_utf8_lossy(&bytes);
        return Ok(subst::substitute(text.trim_start_matches('\u{feff}'), subs, env).text);
    }
    Ok(serde_json::to_string_pretty(&root.to_json()).unwrap_or_default())
}

fn file_name(files: &[String], pos: Pos) -> &str {
    files
        .get(usize::from(pos.file))
        .or(files.first())
        .map(String::as_str)
        .unwrap_or("")
}

/// Checks the bytes are text, substitutes, parses and expands `includes`. Returns the merged
/// tree, the includer (file names by index, warnings) and the located problems so far.
fn parse_document<'a>(
    file: &str,
    bytes: &[u8],
    subs: &'a Substitutions,
    env: &'a dyn Fn(&str) -> Option<String>,
    dir: Option<&Path>,
) -> Result<(node::Node, includes::Includer<'a>, Vec<SpecError>), ValidationErrors> {
    let one = |pos: Pos, msg: String| ValidationErrors(vec![SpecError::at(file, pos, msg)]);
    if let Some(i) = bytes.iter().position(|b| *b == 0) {
        return Err(one(
            pos_of(bytes, i),
            "this is a binary file (it contains a NUL byte), not a YAML topology".into(),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(one(
                pos_of(bytes, e.valid_up_to()),
                "the file is not valid UTF-8 text; save the topology as UTF-8".into(),
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let s = subst::substitute(text, subs, env);
    let mut inc = includes::Includer {
        subs,
        env,
        files: vec![file.to_owned()],
        problems: Vec::new(),
        warnings: s.warnings.clone(),
    };
    let mut errors: Vec<SpecError> = s
        .errors
        .iter()
        .map(|(p, m)| SpecError::at(file, *p, m.clone()))
        .collect();
    let mut root = match node::parse(&s.text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(SpecError::at(file, e.pos, e.message));
            return Err(ValidationErrors(errors));
        }
    };
    let mut stack = Vec::new();
    if let Some(d) = dir
        && let Ok(c) =
            std::fs::canonicalize(d.join(Path::new(file).file_name().unwrap_or_default()))
    {
        stack.push(c);
    }
    inc.expand(&mut root, dir, &mut stack);
    let problems = std::mem::take(&mut inc.problems);
    errors.extend(
        problems
            .into_iter()
            .map(|(p, m)| SpecError::at(file_name(&inc.files, p), p, m)),
    );
    Ok((root, inc, errors))
}

fn pos_of(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    Pos { file: 0, line, col }
}
