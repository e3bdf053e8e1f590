//! `DelimitedLineBolt`: splits a delimited line (a `ts<TAB>key` file's) into declared fields.

use topology_api::component::{Bolt, BoltCollector, ComponentArgs, ComponentError, OutputDeclarer};
use topology_api::tuple::{DEFAULT_STREAM, Tuple};
use topology_api::value::{Fields, Value, Values};

/// Splits field 0 of each input, a line, at `delimiter` (default a tab) into the fields named by
/// the property `fields`; those also named in `intFields` are read as integers. Emits one tuple
/// per line, anchored to it. A line with another number of parts, or a bad integer, is reported
/// (the first few) and skipped.
///
/// ```yaml
/// - id: "parse"
///   className: "DelimitedLineBolt"
///   properties:
///     - {name: "fields", value: ["ts", "key"]}
///     - {name: "intFields", value: ["ts"]}
/// ```
#[derive(Debug)]
pub struct DelimitedLineBolt {
    fields: Vec<String>,
    ints: Vec<bool>,
    delimiter: String,
    bad: u64,
}

fn names(args: &ComponentArgs, prop: &str) -> Result<Vec<String>, ComponentError> {
    let Some(v) = args.properties.get(prop) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or_else(|| {
        ComponentError::Config(format!(
            "property {prop}: expected a list of field names, got {v}"
        ))
    })?;
    list.iter()
        .map(|n| {
            n.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ComponentError::Config(format!(
                        "property {prop}: expected field names, got {n}"
                    ))
                })
        })
        .collect()
}

impl DelimitedLineBolt {
    pub fn from_args(args: &ComponentArgs) -> Result<Self, ComponentError> {
        let fields = names(args, "fields")?;
        if fields.is_empty() {
            return Err(ComponentError::Config(
                "DelimitedLineBolt needs property fields: the names of the line's parts, e.g. [\"ts\", \"key\"]".into(),
            ));
        }
        let int_names = names(args, "intFields")?;
        if let Some(n) = int_names.iter().find(|n| !fields.contains(n)) {
            return Err(ComponentError::Config(format!(
                "property intFields names {n}, which is not one of fields {fields:?}"
            )));
        }
        let delimiter = args
            .property_str("delimiter")
            .unwrap_or_else(|| "\t".into());
        if delimiter.is_empty() {
            return Err(ComponentError::Config(
                "property delimiter: expected at least one character".into(),
            ));
        }
        Ok(DelimitedLineBolt {
            ints: fields.iter().map(|f| int_names.contains(f)).collect(),
            fields,
            delimiter,
            bad: 0,
        })
    }

    fn parse(&self, line: &str) -> Result<Values, String> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let parts: Vec<&str> = line.split(self.delimiter.as_str()).collect();
        if parts.len() != self.fields.len() {
            return Err(format!(
                "{} part(s) where {} field(s) {:?} were declared",
                parts.len(),
                self.fields.len(),
                self.fields
            ));
        }
        let mut v = Values::new();
        for ((p, name), int) in parts.iter().zip(&self.fields).zip(&self.ints) {
            if *int {
                let n = p
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("field {name}: {p:?} is not an integer"))?;
                v.push(Value::Int(n));
            } else {
                v.push(Value::Str((*p).into()));
            }
        }
        Ok(v)
    }
}

impl Bolt for DelimitedLineBolt {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(self.fields.iter().map(String::as_str)));
    }

    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        let Some(line) = input.get_str(0) else {
            return;
        };
        if line.is_empty() {
            return;
        }
        match self.parse(line) {
            Ok(v) => out.emit_stream(DEFAULT_STREAM, &[input], v),
            Err(why) => {
                self.bad += 1;
                if self.bad <= 5 {
                    out.report_error(&format!("skipped the line {line:?}: {why}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bolt(props: serde_json::Value) -> Result<DelimitedLineBolt, ComponentError> {
        let mut a = ComponentArgs::default();
        for (k, v) in props.as_object().unwrap() {
            a.properties.insert(k.clone(), v.clone());
        }
        DelimitedLineBolt::from_args(&a)
    }

    #[test]
    fn lines_split_into_typed_fields() {
        let b = bolt(json!({"fields": ["ts", "key"], "intFields": ["ts"]})).unwrap();
        assert_eq!(
            b.parse("1700000000123\tuser-7\r").unwrap(),
            topology_api::values![1_700_000_000_123i64, "user-7"]
        );
        assert!(b.parse("x\tk").unwrap_err().contains("not an integer"));
        assert!(b.parse("1\tk\tz").unwrap_err().contains("3 part(s)"));
        let c = bolt(json!({"fields": ["a", "b"], "delimiter": ","})).unwrap();
        assert_eq!(c.parse("x,y").unwrap(), topology_api::values!["x", "y"]);
        for (p, needle) in [
            (json!({}), "needs property fields"),
            (
                json!({"fields": ["a"], "intFields": ["b"]}),
                "not one of fields",
            ),
            (json!({"fields": "a"}), "expected a list"),
        ] {
            assert!(bolt(p).unwrap_err().to_string().contains(needle));
        }
    }
}
