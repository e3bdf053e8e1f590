//! Flux's variable substitution, applied to the YAML text before it is parsed.
//!
//! - `${key}`: from `--set key=value`, else from the `--filter` properties file.
//! - `${key:-default}` (Gale's addition): as `${key}`, else `default`.
//! - `${ENV-NAME}`: the environment variable `NAME`, only with `--env-filter` (as Flux).
//!
//! A `${key}` with no value is left as it is, exactly as Flux does (Storm's own examples rely on
//! that), and reported as a warning so a typo does not pass unnoticed.

use super::node::Pos;
use std::collections::BTreeMap;

/// Where substitution values come from.
#[derive(Clone, Debug, Default)]
pub struct Substitutions {
    /// `--filter` properties and `--set` pairs (later ones win).
    pub vars: BTreeMap<String, String>,
    /// `--env-filter`: resolve `${ENV-NAME}`.
    pub env_filter: bool,
}

impl Substitutions {
    /// Adds `key=value` pairs as given on the command line.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_owned(), value.to_owned());
    }
}

/// The outcome of substitution: the new text, and what could not be resolved.
#[derive(Debug, Default)]
pub struct Substituted {
    pub text: String,
    pub warnings: Vec<(Pos, String)>,
    pub errors: Vec<(Pos, String)>,
}

/// Replaces every `${...}` in `text`.
pub fn substitute(
    text: &str,
    subs: &Substitutions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Substituted {
    let mut out = Substituted {
        text: String::with_capacity(text.len()),
        ..Default::default()
    };
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            let expr = &rest[start + 2..start + 2 + len];
            let pos = Pos {
                file: 0,
                line: lineno + 1,
                col: col + rest[..start].chars().count(),
            };
            out.text.push_str(&rest[..start]);
            let whole = &rest[start..start + len + 3];
            match resolve(expr, subs, env) {
                Resolved::Value(v) => out.text.push_str(&v),
                Resolved::Keep(warning) => {
                    if let Some(w) = warning {
                        out.warnings.push((pos, w));
                    }
                    out.text.push_str(whole);
                }
                Resolved::Error(e) => {
                    out.errors.push((pos, e));
                    out.text.push_str(whole);
                }
            }
            col += rest[..start + len + 3].chars().count();
            rest = &rest[start + len + 3..];
        }
        out.text.push_str(rest);
    }
    out
}

enum Resolved {
    Value(String),
    Keep(Option<String>),
    Error(String),
}

fn resolve(expr: &str, subs: &Substitutions, env: &dyn Fn(&str) -> Option<String>) -> Resolved {
    if let Some(name) = expr.strip_prefix("ENV-") {
        if !subs.env_filter {
            return Resolved::Keep(None);
        }
        let (name, default) = split_default(name);
        return match (env(name), default) {
            (Some(v), _) => Resolved::Value(v),
            (None, Some(d)) => Resolved::Value(d.to_owned()),
            (None, None) => Resolved::Error(format!(
                "environment variable {name} is not set (set it, or write ${{ENV-{name}:-default}})"
            )),
        };
    }
    let (key, default) = split_default(expr);
    match (subs.vars.get(key), default) {
        (Some(v), _) => Resolved::Value(v.clone()),
        (None, Some(d)) => Resolved::Value(d.to_owned()),
        (None, None) => Resolved::Keep(Some(format!(
            "${{{key}}} has no value and is left as is (pass --set {key}=VALUE or --filter FILE.properties)"
        ))),
    }
}

fn split_default(expr: &str) -> (&str, Option<&str>) {
    match expr.find(":-") {
        Some(i) => (&expr[..i], Some(&expr[i + 2..])),
        None => (expr, None),
    }
}

/// Parses a Java `.properties` file: `key=value`, `key: value` or `key value`; `#` and `!`
/// comments; a trailing `\` continues a line.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let sep = entry
            .find(['=', ':'])
            .into_iter()
            .chain(entry.find(char::is_whitespace))
            .min();
        let (k, v) = match sep {
            Some(i) => {
                let v = entry[i..].trim_start();
                let v = v.strip_prefix(['=', ':']).unwrap_or(v);
                (entry[..i].trim(), v.trim())
            }
            None => (entry.trim(), ""),
        };
        if !k.is_empty() {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&str, &str)], env_filter: bool) -> Substituted {
        let mut s = Substitutions {
            env_filter,
            ..Default::default()
        };
        for (k, v) in vars {
            s.set(k, v);
        }
        substitute(text, &s, &|n| (n == "HOME").then(|| "/home/x".to_owned()))
    }

    #[test]
    fn substitution_table() {
        let cases: &[(&str, &[(&str, &str)], bool, &str)] = &[
            ("a: ${x}", &[("x", "1")], false, "a: 1"),
            ("a: ${x:-d}", &[], false, "a: d"),
            ("a: ${x:-d}", &[("x", "v")], false, "a: v"),
            ("a: ${x:-}", &[], false, "a: "),
            ("a: ${ENV-HOME}", &[], false, "a: ${ENV-HOME}"),
            ("a: ${ENV-HOME}", &[], true, "a: /home/x"),
            ("a: ${ENV-NOPE:-z}", &[], true, "a: z"),
            ("a: ${x} ${y}", &[("x", "1"), ("y", "2")], false, "a: 1 2"),
            ("a: ${unclosed", &[], false, "a: ${unclosed"),
            ("a: ${missing}", &[], false, "a: ${missing}"),
        ];
        for (text, vars, env, want) in cases {
            assert_eq!(run(text, vars, *env).text, *want, "{text}");
        }
    }

    #[test]
    fn unresolved_is_a_located_warning_and_missing_env_an_error() {
        let s = run("x: 1\nname: \"${topology.name}\"\n", &[], false);
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(
            s.warnings[0].0,
            Pos {
                file: 0,
                line: 2,
                col: 8
            }
        );
        let s = run("a: ${ENV-NOPE}", &[], true);
        assert_eq!(s.errors.len(), 1);
        assert!(s.errors[0].1.contains("NOPE"));
    }

    #[test]
    fn properties_file() {
        let p = parse_properties(
            "# c\ntopology.name: substitution-topology\na=1\nb 2\nlong = x\\\n  y\n! c\n",
        );
        assert_eq!(p["topology.name"], "substitution-topology");
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "2");
        assert_eq!(p["long"], "xy");
    }
}
