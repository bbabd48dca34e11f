//! Replaying the official Azure REST API examples (tests/fixtures/azure-rest-api-specs)
//! against the sandbox: the request as the example has it (subscription rewritten to the
//! sandbox's), and a response that has every field of the example's with the same JSON type.
//! Values are not compared: ids, etags, timestamps and GUIDs differ by nature, and the examples'
//! other values are often inconsistent with their own requests.

use std::path::PathBuf;

use serde_json::Value;

const ROOT: &str = "tests/fixtures/azure-rest-api-specs/specification";

/// An example file, parsed.
pub struct Example {
    pub file: String,
    pub json: Value,
}

impl Example {
    /// Loads `specification/<path>`; a missing fixture fails the test (never skips it).
    pub fn load(path: &str) -> Example {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(ROOT)
            .join(path);
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        Example {
            file: path.to_owned(),
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn parameter(&self, name: &str) -> &Value {
        &self.json["parameters"][name]
    }

    pub fn str(&self, name: &str) -> &str {
        self.parameter(name)
            .as_str()
            .unwrap_or_else(|| panic!("{}: no string parameter {name}", self.file))
    }

    /// The request body: the one object-valued parameter.
    pub fn body(&self) -> Value {
        self.json["parameters"]
            .as_object()
            .unwrap()
            .values()
            .find(|v| v.is_object())
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The example's response for a status code.
    pub fn response(&self, status: u16) -> &Value {
        let response = &self.json["responses"][status.to_string()];
        assert!(
            !response.is_null(),
            "{}: no {status} response in the example",
            self.file
        );
        response
    }

    /// Asserts that `actual` (status and body) matches the example's response for that status.
    pub fn assert_matches(&self, status: u16, actual: &Value) {
        let expected = &self.response(status)["body"];
        let mut problems = Vec::new();
        same_shape(expected, actual, "$", &mut problems);
        assert!(
            problems.is_empty(),
            "{} ({status}): the sandbox's body lacks or mistypes:\n  {}\nbody: {actual:#}",
            self.file,
            problems.join("\n  ")
        );
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `expected` is in `actual` with the same JSON type; arrays element by element.
/// An example's `null` only asks for the field to be there.
pub fn same_shape(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, _) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    Some(found) => same_shape(value, found, &format!("{at}.{key}"), problems),
                    None => problems.push(format!("{at}.{key} is missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if a.len() < e.len() {
                problems.push(format!(
                    "{at} has {} elements, the example {}",
                    a.len(),
                    e.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                same_shape(ev, av, &format!("{at}[{i}]"), problems);
            }
        }
        (e, a) if kind(e) != kind(a) => {
            problems.push(format!("{at} is {}, the example has {}", kind(a), kind(e)));
        }
        _ => {}
    }
}

#[test]
fn shapes_are_compared_field_by_field() {
    let expected = serde_json::json!({"a": {"b": [1, {"c": "x"}]}, "n": null});
    let mut problems = Vec::new();
    same_shape(
        &expected,
        &serde_json::json!({"a": {"b": [2, {"c": 3}]}, "extra": true}),
        "$",
        &mut problems,
    );
    assert_eq!(
        problems,
        [
            "$.a.b[1].c is number, the example has string",
            "$.n is missing"
        ]
    );
}
