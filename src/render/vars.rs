//! Declared template variables. A policy template `policies/<name>.xml.tera` declares the
//! variables it reads (`vars.NAME`, through its includes too) in `policies/<name>.vars.yaml` beside
//! it: type, description, and a default or `required: true`.
//!
//! Declarations exist so that a typo in `policy.vars` is an error instead of a silent fallback to
//! the inherited value, a wrong type is reported at the YAML line the user wrote instead of at the
//! rendered XML, defaults have one home instead of one `{% else %}` per use, and the environment
//! schema can describe `policy.vars`.
//!
//! A YAML file beside the template rather than front matter inside it: it is read with the same
//! strict loader as environment files (positions, duplicate keys, quoted text vs plain numbers), an
//! editor treats it as YAML, and the template stays plain Tera.

use std::collections::BTreeMap;

use marked_yaml::{LoaderOptions, Node};
use serde_json::{Value, json};

use super::RenderError;
use crate::config::{Blueprint, ConfigError, Diagnostic, Location, PolicyValue, similar};

mod scan;

pub use scan::{Read, Scan, line_column, scan};

/// The declarations file of a template: `policies/x.xml.tera` → `policies/x.vars.yaml`.
pub fn declarations_name(template: &str) -> String {
    let stem = template.strip_suffix(".tera").unwrap_or(template);
    let stem = stem.strip_suffix(".xml").unwrap_or(stem);
    format!("{stem}.vars.yaml")
}

/// What a variable may hold. Lists hold strings; an enum is a string from a closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarType {
    Integer { minimum: Option<i64> },
    String,
    Boolean,
    List,
    Enum(Vec<String>),
}

impl VarType {
    /// "expected …" in messages.
    fn expected(&self) -> String {
        match self {
            VarType::Integer { minimum: None } => "an integer".to_owned(),
            VarType::Integer { minimum: Some(m) } => format!("an integer of at least {m}"),
            VarType::String => "a string".to_owned(),
            VarType::Boolean => "`true` or `false`".to_owned(),
            VarType::List => "a list of strings".to_owned(),
            VarType::Enum(values) => format!("one of {}", values.join(", ")),
        }
    }

    /// The kind alone, for a value of another kind: the bounds would only distract.
    fn kind(&self) -> String {
        match self {
            VarType::Integer { .. } => "an integer".to_owned(),
            other => other.expected(),
        }
    }

    fn check(&self, value: &PolicyValue) -> Result<(), Mismatch> {
        if let (VarType::Integer { minimum: Some(m) }, PolicyValue::Integer(i)) = (self, value)
            && i < m
        {
            return Err(Mismatch {
                message: format!("expected {}, found {i}", self.expected()),
                hint: None,
            });
        }
        let fits = match (self, value) {
            (VarType::Integer { .. }, PolicyValue::Integer(_)) => true,
            (VarType::String, PolicyValue::Text(_))
            | (VarType::Boolean, PolicyValue::Bool(_))
            | (VarType::List, PolicyValue::List(_)) => true,
            (VarType::Enum(values), PolicyValue::Text(t)) => values.contains(t),
            _ => false,
        };
        if fits {
            return Ok(());
        }
        let hint = match (self, value) {
            (VarType::Integer { .. }, PolicyValue::Text(t)) if t.trim().parse::<i64>().is_ok() => {
                Some(format!(
                    "quoted values are text; write {} without quotes",
                    t.trim()
                ))
            }
            (VarType::Boolean, PolicyValue::Text(t)) if t == "true" || t == "false" => {
                Some(format!("quoted values are text; write {t} without quotes"))
            }
            (VarType::String | VarType::Enum(_), PolicyValue::Integer(i)) => {
                Some(format!("write \"{i}\" in quotes to make it text"))
            }
            (VarType::String | VarType::Enum(_), PolicyValue::Bool(b)) => {
                Some(format!("write \"{b}\" in quotes to make it text"))
            }
            (VarType::Enum(values), PolicyValue::Text(t)) => values
                .iter()
                .find(|v| similar(t, v))
                .map(|v| format!("did you mean `{v}`?")),
            _ => None,
        };
        Err(Mismatch {
            message: format!("expected {}, found {}", self.kind(), found(value)),
            hint,
        })
    }

    fn json_schema(&self) -> Value {
        match self {
            VarType::Integer { minimum: None } => json!({ "type": "integer" }),
            VarType::Integer { minimum: Some(m) } => json!({ "type": "integer", "minimum": m }),
            VarType::String => json!({ "type": "string" }),
            VarType::Boolean => json!({ "type": "boolean" }),
            VarType::List => json!({ "type": "array", "items": { "type": "string" } }),
            VarType::Enum(values) => json!({ "type": "string", "enum": values }),
        }
    }
}

/// What a value is, for "found …" in messages.
fn found(value: &PolicyValue) -> String {
    match value {
        PolicyValue::Bool(b) => format!("a boolean ({b})"),
        PolicyValue::Integer(i) => format!("an integer ({i})"),
        PolicyValue::Text(t) => format!("a string ({t:?})"),
        PolicyValue::List(_) => "a list".to_owned(),
    }
}

struct Mismatch {
    message: String,
    hint: Option<String>,
}

fn to_json(value: &PolicyValue) -> Value {
    match value {
        PolicyValue::Bool(b) => json!(b),
        PolicyValue::Integer(i) => json!(i),
        PolicyValue::Text(t) => json!(t),
        PolicyValue::List(l) => json!(l),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub ty: VarType,
    pub description: String,
    /// What templates see when the environment does not set the variable. None: absent, which
    /// `{% if vars.x %}` reads as false.
    pub default: Option<PolicyValue>,
    pub required: bool,
}

/// One template's declarations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declarations {
    /// The declarations file, as displayed in messages.
    pub file: String,
    pub vars: BTreeMap<String, Declaration>,
}

const DECLARATION_KEYS: [&str; 6] = [
    "type",
    "description",
    "default",
    "required",
    "minimum",
    "values",
];

const TYPES: [&str; 5] = ["integer", "string", "boolean", "list", "enum"];

/// Reads a declarations file; every problem names its file, line and column.
pub fn parse(file: &str, text: &str) -> Result<Declarations, RenderError> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true)
        .toplevel_mapping();
    let error = |marker: Option<&marked_yaml::Marker>, message: String, hint: Option<String>| {
        let (line, column) = marker.map_or((1, 1), |m| (m.line(), m.column()));
        RenderError::Variable {
            file: file.to_owned(),
            line,
            column,
            message,
            hint,
        }
    };
    // Through the same door as every YAML input: size, NUL, byte-order mark, depth and a second
    // document are checked before the recursive parser sees the text.
    let root = crate::config::parse_yaml(0, file, text, options).map_err(RenderError::Vars)?;
    let mut vars = BTreeMap::new();
    let Some(map) = root.as_mapping() else {
        return Ok(Declarations {
            file: file.to_owned(),
            vars,
        });
    };
    for (name, node) in map.iter() {
        let at = name.span().start();
        if !is_identifier(name.as_str()) {
            return Err(error(
                at,
                format!("`{}` cannot be used in a template", name.as_str()),
                Some("variable names are letters, digits and `_` (e.g. tokens_per_minute)".into()),
            ));
        }
        let Some(fields) = node.as_mapping() else {
            return Err(error(
                node.span().start().or(at),
                format!(
                    "`{}`: expected a mapping (type, description, default)",
                    name.as_str()
                ),
                None,
            ));
        };
        for (key, _) in fields.iter() {
            if !DECLARATION_KEYS.contains(&key.as_str()) {
                let close = DECLARATION_KEYS.iter().find(|k| similar(key.as_str(), k));
                return Err(error(
                    key.span().start(),
                    format!(
                        "{}.{}: unknown key `{}`",
                        name.as_str(),
                        key.as_str(),
                        key.as_str()
                    ),
                    Some(match close {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("known keys here: {}", DECLARATION_KEYS.join(", ")),
                    }),
                ));
            }
        }
        let scalar = |key: &str| fields.get_node(key).map(|n| (n, n.as_scalar()));
        let here = |key: &str| format!("{}.{key}", name.as_str());
        let ty_name = match scalar("type") {
            Some((_, Some(s))) if TYPES.contains(&s.as_str()) => s.as_str().to_owned(),
            Some((n, s)) => {
                let close = s.and_then(|s| TYPES.iter().find(|t| similar(s.as_str(), t)));
                return Err(error(
                    n.span().start(),
                    format!("{}: expected one of {}", here("type"), TYPES.join(", ")),
                    close.map(|t| format!("did you mean `{t}`?")),
                ));
            }
            None => {
                return Err(error(
                    at,
                    format!("{}: missing `type`", name.as_str()),
                    None,
                ));
            }
        };
        let description = match scalar("description") {
            Some((_, Some(s))) if !s.as_str().trim().is_empty() => s.as_str().trim().to_owned(),
            Some((n, _)) => {
                return Err(error(
                    n.span().start(),
                    format!("{}: expected a non-blank text", here("description")),
                    None,
                ));
            }
            None => {
                return Err(error(
                    at,
                    format!("{}: missing `description`", name.as_str()),
                    Some("say what the variable does in the policy; editors show it".into()),
                ));
            }
        };
        let minimum = match scalar("minimum") {
            None => None,
            Some((n, s)) => match (ty_name.as_str(), s.filter(|s| s.may_coerce())) {
                ("integer", Some(s)) if s.as_str().parse::<i64>().is_ok() => {
                    s.as_str().parse().ok()
                }
                _ => {
                    return Err(error(
                        n.span().start(),
                        format!("{}: an integer, for `type: integer` only", here("minimum")),
                        None,
                    ));
                }
            },
        };
        let values = match fields.get_node("values") {
            None if ty_name == "enum" => {
                return Err(error(
                    at,
                    format!("{}: `type: enum` needs `values`", name.as_str()),
                    None,
                ));
            }
            None => Vec::new(),
            Some(n) => match (ty_name.as_str(), typed(n)) {
                ("enum", Ok(PolicyValue::List(v))) if !v.is_empty() => v,
                _ => {
                    return Err(error(
                        n.span().start(),
                        format!(
                            "{}: a list of strings, for `type: enum` only",
                            here("values")
                        ),
                        None,
                    ));
                }
            },
        };
        let ty = match ty_name.as_str() {
            "integer" => VarType::Integer { minimum },
            "string" => VarType::String,
            "boolean" => VarType::Boolean,
            "list" => VarType::List,
            _ => VarType::Enum(values),
        };
        let required = match scalar("required") {
            None => false,
            Some((_, Some(s))) if s.may_coerce() && s.as_bool().is_some() => {
                s.as_bool().unwrap_or(false)
            }
            Some((n, _)) => {
                return Err(error(
                    n.span().start(),
                    format!("{}: expected `true` or `false`", here("required")),
                    None,
                ));
            }
        };
        let default = match fields.get_node("default") {
            None => None,
            Some(n) => {
                let value = typed(n).map_err(|m| {
                    error(n.span().start(), format!("{}: {m}", here("default")), None)
                })?;
                if required {
                    return Err(error(
                        n.span().start(),
                        format!("{}: a required variable has no default", here("default")),
                        Some("remove `default:` or `required: true`".into()),
                    ));
                }
                ty.check(&value).map_err(|m| {
                    error(
                        n.span().start(),
                        format!("{}: {}", here("default"), m.message),
                        m.hint,
                    )
                })?;
                Some(value)
            }
        };
        vars.insert(
            name.as_str().to_owned(),
            Declaration {
                ty,
                description,
                default,
                required,
            },
        );
    }
    Ok(Declarations {
        file: file.to_owned(),
        vars,
    })
}

/// A YAML value as `policy.vars` types it: plain `true`/`false` and integers are typed, quoted
/// scalars stay text, a list holds scalars.
fn typed(node: &Node) -> Result<PolicyValue, String> {
    match node {
        Node::Scalar(s) if s.may_coerce() && matches!(s.as_str(), "true" | "false") => {
            Ok(PolicyValue::Bool(s.as_str() == "true"))
        }
        Node::Scalar(s) if s.may_coerce() && s.as_str().parse::<i64>().is_ok() => {
            Ok(PolicyValue::Integer(s.as_str().parse().unwrap_or_default()))
        }
        Node::Scalar(s) => Ok(PolicyValue::Text(s.as_str().to_owned())),
        Node::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Node::Scalar(s) => Ok(s.as_str().to_owned()),
                _ => Err("expected a list of strings".to_owned()),
            })
            .collect::<Result<_, _>>()
            .map(PolicyValue::List),
        Node::Mapping(_) => Err("expected a value, found a mapping".to_owned()),
    }
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Declarations {
    /// `policy.vars` in the environment schema: the declared names only, each with its type.
    pub fn json_schema(&self) -> serde_json::Map<String, Value> {
        self.vars
            .iter()
            .map(|(name, d)| {
                let mut schema = d.ty.json_schema();
                let mut description = d.description.clone();
                if d.required {
                    description.push_str(" Required.");
                }
                schema["description"] = json!(description);
                if let Some(default) = &d.default {
                    schema["default"] = to_json(default);
                }
                (name.clone(), schema)
            })
            .collect()
    }
}

/// `policy.vars` of the environment schema for every template at once: an environment file may
/// choose its template, or inherit it, so its editor cannot know which one applies. A name declared
/// differently by two templates accepts either declaration.
pub fn schema_of_all<'a>(
    all: impl IntoIterator<Item = &'a Declarations>,
) -> serde_json::Map<String, Value> {
    let mut merged: serde_json::Map<String, Value> = serde_json::Map::new();
    for declarations in all {
        for (name, schema) in declarations.json_schema() {
            match merged.get_mut(&name) {
                None => {
                    merged.insert(name, schema);
                }
                Some(existing) if *existing == schema => {}
                Some(existing) => {
                    let mut options = match existing.get("anyOf") {
                        Some(Value::Array(options)) => options.clone(),
                        _ => vec![existing.clone()],
                    };
                    if !options.contains(&schema) {
                        options.push(schema);
                    }
                    *existing = json!({ "anyOf": options });
                }
            }
        }
    }
    merged
}

/// Checks an environment's `policy.vars` against the template's declarations and returns what
/// templates see as `vars`: the environment's values over the declared defaults. Every problem is
/// reported at once, at the key (unknown variable) or the value (wrong type) the user wrote.
pub fn resolve(
    declarations: Option<&Declarations>,
    template_file: &str,
    blueprint: &Blueprint,
) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let empty = Declarations::default();
    let declared = declarations.unwrap_or(&empty);
    let sites = &blueprint.policy.var_sites;
    let at = |name: &str, value: bool| -> Diagnostic {
        let path = format!("policy.vars.{name}");
        let site = sites.get(name);
        let location: Option<Location> = site.and_then(|s| {
            if value {
                s.value.clone().or(s.key.clone())
            } else {
                s.key.clone()
            }
        });
        match location {
            Some(l) => Diagnostic::new("").at(Some(l)).path(path),
            None => Diagnostic::new("").in_file(&blueprint.file).path(path),
        }
    };
    let mut diagnostics = Vec::new();
    for (name, value) in &blueprint.policy.vars {
        let Some(declaration) = declared.vars.get(name) else {
            let mut d = at(name, false);
            d.message = "unknown template variable".to_owned();
            let close = declared.vars.keys().find(|k| similar(name, k));
            d.hint = Some(match (close, declarations) {
                (Some(k), _) => format!("did you mean `{k}`?"),
                (None, Some(decl)) => format!(
                    "`{}` declares: {} ({})",
                    blueprint.policy.template,
                    declared.vars.keys().cloned().collect::<Vec<_>>().join(", "),
                    decl.file
                ),
                (None, None) => format!(
                    "{template_file} declares no variables; declare them in {}",
                    declarations_name(template_file)
                ),
            });
            diagnostics.push(d);
            continue;
        };
        if let Err(mismatch) = declaration.ty.check(value) {
            let mut d = at(name, true);
            d.message = mismatch.message;
            d.hint = Some(mismatch.hint.unwrap_or_else(|| {
                format!("`{name}`: {} ({})", declaration.description, declared.file)
            }));
            diagnostics.push(d);
        }
    }
    for (name, declaration) in &declared.vars {
        if declaration.required && !blueprint.policy.vars.contains_key(name) {
            diagnostics.push(
                Diagnostic::new(format!("missing required template variable `{name}`"))
                    .in_file(&blueprint.file)
                    .path("policy.vars")
                    .with_hint(format!(
                        "`{name}`: {} ({})",
                        declaration.description, declared.file
                    )),
            );
        }
    }
    if !diagnostics.is_empty() {
        // In reading order, file by file, rather than by variable name.
        diagnostics.sort_by(|a, b| {
            let key = |d: &Diagnostic| {
                d.location
                    .as_ref()
                    .map(|l| (l.file.clone(), l.line, l.column))
            };
            key(a).cmp(&key(b))
        });
        return Err(ConfigError { diagnostics });
    }
    Ok(declared
        .vars
        .iter()
        .filter_map(|(name, d)| {
            let value = blueprint.policy.vars.get(name).or(d.default.as_ref())?;
            Some((name.clone(), to_json(value)))
        })
        .collect())
}

#[cfg(test)]
mod tests;
