//! Environments: `environments/<name>.yaml` files, `extends:` inheritance, and their validation into
//! a [`Blueprint`]. Pure except for [`load`], the one explicit loader that reads files.

mod blueprint;
mod checker;
mod diagnostic;
mod foundry;
mod limits;
mod model;
pub mod naming;
mod shape;
mod tree;
mod upgrade;
mod yaml;

use std::io;
use std::path::Path;

use marked_yaml::{LoaderOptions, Node};

pub use blueprint::{
    Api, ApiApp, Apim, ApimService, Blueprint, ClientApp, Deployment, DeploymentSku, Entra,
    Foundry, Guid, Model, PolicySpec, PolicyValue, VarSite, auth_fits_cloud, default_auth,
};
pub use diagnostic::{ConfigError, Diagnostic, Location};
pub use limits::RESERVED_TAGS;
pub use model::environment_schema;
pub use tree::KeyPath;
pub use upgrade::Upgrade;
pub use yaml::parse as parse_yaml;
pub use yaml::{MAX_BYTES as MAX_YAML_BYTES, MAX_DEPTH as MAX_YAML_DEPTH};

use checker::Checker;
use model::RawEnvironment;
use tree::Sources;

/// Parses a small YAML document (test cases, fault scripts) into `T`, with the strictness of
/// environment files: the same input checks (size, NUL, depth, one document), duplicate keys are
/// errors, quoted scalars stay text, and an error names `file:line:col` and the key path. A syntax
/// error quotes its line under the message.
pub fn parse_yaml_document<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, String> {
    parse_yaml_located(file, text).map(|l| l.value)
}

/// A YAML document parsed as [`parse_yaml_document`] does, its tree kept, so that a check made
/// after parsing can still say at which line and column the key it is about is.
pub struct LocatedYaml<T> {
    pub value: T,
    node: Node,
}

impl<T> LocatedYaml<T> {
    /// `line:col` of the key at `path` (`cases[2].token.version`), or of its nearest ancestor
    /// in the document.
    pub fn position(&self, path: &str) -> Option<String> {
        tree::locate(&self.node, &tree::KeyPath::parse(path))
            .map(|m| format!("{}:{}", m.line(), m.column()))
    }
}

/// [`parse_yaml_document`], keeping the tree for [`LocatedYaml::position`].
pub fn parse_yaml_located<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<LocatedYaml<T>, String> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let node = yaml::parse(0, file, text, options).map_err(|e| {
        let d = &e.diagnostics[0];
        let mut message = d.to_string();
        if let Some(excerpt) = &d.excerpt {
            message = format!("{message}\n{excerpt}");
        }
        if let Some(hint) = &d.hint {
            message = format!("{message}\nhint: {hint}");
        }
        message
    })?;
    let value = marked_yaml::from_node(&node).map_err(|e| {
        let at = e
            .start_mark()
            .map(|m| format!("{}:{}:", m.line(), m.column()))
            .unwrap_or_default();
        format!(
            "{file}:{at} {}: {}",
            e.path().unwrap_or("(document)"),
            serde_message(&e)
        )
    })?;
    Ok(LocatedYaml { value, node })
}

/// Reads a YAML input from disk, refusing one over [`MAX_YAML_BYTES`] before reading it: the
/// limit is there so that a wrong path (a log, a disk image) fails fast instead of filling memory.
pub fn read_yaml_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let limit = yaml::MAX_BYTES as u64;
    let too_large = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is {size} bytes; the limit is {limit} bytes (1 MiB)"),
        )
    };
    // The size first: a large binary file is "too large", not "not UTF-8".
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size));
    }
    // A file that grows while read (or a device whose size says nothing) is cut at the limit.
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// An environment as loaded: either a target that can be rendered and deployed, or an abstract
/// parent (`abstract: true`) that exists only to be extended.
#[derive(Debug, Clone)]
pub enum Environment {
    Target(Box<Blueprint>),
    Abstract { name: String, file: String },
}

/// Reads one environment file: its display path and text.
pub type ReadFile<'a> = dyn Fn(&str) -> io::Result<(String, String)> + 'a;

/// Loads `<dir>/<name>.yaml` and its parents from disk.
pub fn load(dir: &Path, name: &str) -> Result<Environment, ConfigError> {
    load_recorded(dir, name).map(|(environment, _)| environment)
}

/// [`load`], with every file it read (display path, text), the environment's own first: what a
/// saved plan is bound to.
pub fn load_recorded(
    dir: &Path,
    name: &str,
) -> Result<(Environment, Vec<(String, String)>), ConfigError> {
    let files = std::cell::RefCell::new(Vec::new());
    let read = |env: &str| {
        let path = dir.join(format!("{env}.yaml"));
        let display = path.display().to_string();
        match read_yaml_file(&path) {
            Ok(text) => {
                files.borrow_mut().push((display.clone(), text.clone()));
                Ok((display, text))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(io::Error::new(e.kind(), format!("{display}: {e}")))
            }
            Err(e) => Err(e),
        }
    };
    // Listing the directory is I/O, so it happens here rather than in `resolve`.
    if valid_env_name(name) && !dir.join(format!("{name}.yaml")).exists() {
        return Err(missing_environment(name, list(dir).ok()).into());
    }
    let environment = resolve_with(name, &read, &confine_to_working_directory)?;
    Ok((environment, files.into_inner()))
}

/// An environment named on the command line that has no file; `known` lists those that do.
fn missing_environment(name: &str, known: Option<Vec<String>>) -> Diagnostic {
    let diagnostic = Diagnostic::new(format!("environment `{name}` does not exist"));
    match known {
        Some(known) if !known.is_empty() => {
            let guess = known
                .iter()
                .find(|k| similar(name, k))
                .map(|g| format!("did you mean `{g}`? "))
                .unwrap_or_default();
            diagnostic.with_hint(format!(
                "{guess}the environments here are {} (files <name>.yaml in --env-dir)",
                known.join(", ")
            ))
        }
        _ => diagnostic
            .with_hint("environments are files named environments/<name>.yaml; see --env-dir"),
    }
}

/// Refuses a directory that resolves, through symbolic links, outside the working directory (the
/// project). The lexical rules (relative, no `..`) are checked before this, in the blueprint.
fn confine_to_working_directory(dir: &str) -> Result<(), String> {
    let project = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .map_err(|e| format!("cannot resolve the working directory: {e}"))?;
    match project.join(dir).canonicalize() {
        Ok(resolved) if resolved.starts_with(&project) => Ok(()),
        Ok(resolved) => Err(format!(
            "`{dir}` resolves to {} (through a symbolic link), outside the project directory {}",
            resolved.display(),
            project.display()
        )),
        // A directory that does not exist is reported when the templates are loaded.
        Err(_) => Ok(()),
    }
}

/// The names of all environments in `dir` (files ending in `.yaml`), sorted.
pub fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Resolves an environment through `read`: follows `extends:`, merges, scans for secrets, checks
/// every key and value. Pure given `read`, which makes it testable on in-memory files.
pub fn resolve(name: &str, read: &ReadFile<'_>) -> Result<Environment, ConfigError> {
    resolve_with(name, read, &|_| Ok(()))
}

/// Checks that a directory named in an environment stays inside the project once resolved on disk.
pub type ConfineDir<'a> = dyn Fn(&str) -> Result<(), String> + 'a;

/// [`resolve`], with the check of directories against the file system that only [`load`] can make.
pub fn resolve_with(
    name: &str,
    read: &ReadFile<'_>,
    confine: &ConfineDir<'_>,
) -> Result<Environment, ConfigError> {
    if !valid_env_name(name) {
        return Err(Diagnostic::new(format!("`{name}` is not a valid environment name"))
            .with_hint("environment names are lower-case letters, digits, `-` and `_` (the file is environments/<name>.yaml)")
            .into());
    }
    let mut sources = Sources::default();
    // (name, display path, tree without `extends`/`abstract`), child first.
    let mut chain: Vec<(String, String, Node)> = Vec::new();
    let mut leaf_abstract = false;
    let mut current = name.to_owned();
    let mut referenced_at: Option<Location> = None;
    loop {
        if let Some(pos) = chain.iter().position(|(n, _, _)| *n == current) {
            let mut cycle: Vec<&str> = chain[pos..].iter().map(|(n, _, _)| n.as_str()).collect();
            cycle.push(&current);
            return Err(Diagnostic::new(format!("`extends` cycle: {}", cycle.join(" → ")))
                .at(referenced_at)
                .path("extends")
                .with_hint("an environment cannot extend itself, directly or through its parents; remove one `extends:`")
                .into());
        }
        let (display, text) = match read(&current) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let diagnostic = match referenced_at.take() {
                    Some(at) => Diagnostic::new(format!(
                        "parent environment `{current}` does not exist"
                    ))
                    .at(Some(at))
                    .path("extends")
                    .with_hint(format!(
                        "create environments/{current}.yaml or fix the name after `extends:`"
                    )),
                    None => missing_environment(&current, None),
                };
                return Err(diagnostic.into());
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(Diagnostic::new(e.to_string())
                    .with_hint("environment files are UTF-8 text of at most 1 MiB; check the file")
                    .into());
            }
            Err(e) => {
                return Err(
                    Diagnostic::new(format!("cannot read environment `{current}`: {e}")).into(),
                );
            }
        };
        let source = sources.add(&display);
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            // Quoted scalars stay text: `capacity: "5"` is an error, `version: "2024-07-18"` a string.
            .prevent_coercion(true)
            .toplevel_mapping();
        let mut node = yaml::parse(source, &display, &text, options)?;
        let map = node.as_mapping_mut().expect("top level is a mapping");
        let parent = match tree::take_scalar(map, "extends") {
            Some(Ok(scalar)) => {
                referenced_at = sources.location(scalar.span().start());
                Some(scalar.as_str().to_owned())
            }
            Some(Err(marker)) => {
                return Err(
                    Diagnostic::new("`extends` takes the name of one environment")
                        .at(sources.location(marker.as_ref()))
                        .path("extends")
                        .into(),
                );
            }
            None => None,
        };
        let is_abstract = match tree::take_scalar(map, "abstract") {
            Some(Ok(scalar)) => match scalar.as_bool() {
                Some(b) => b,
                None => {
                    return Err(Diagnostic::new("expected `true` or `false`")
                        .at(sources.location(scalar.span().start()))
                        .path("abstract")
                        .into());
                }
            },
            Some(Err(marker)) => {
                return Err(Diagnostic::new("expected `true` or `false`")
                    .at(sources.location(marker.as_ref()))
                    .path("abstract")
                    .into());
            }
            None => false,
        };
        if chain.is_empty() {
            leaf_abstract = is_abstract;
        }
        chain.push((current.clone(), display, node));
        match parent {
            Some(p) if valid_env_name(&p) => current = p,
            Some(p) => {
                return Err(
                    Diagnostic::new(format!("`{p}` is not a valid environment name"))
                        .at(referenced_at)
                        .path("extends")
                        .into(),
                );
            }
            None => break,
        }
    }

    let leaf_file = chain[0].1.clone();
    let merged = chain
        .into_iter()
        .rev()
        .map(|(_, _, node)| node)
        .reduce(tree::merge)
        .expect("the chain holds at least the environment itself");

    let secrets = tree::find_secrets(&merged);
    if !secrets.is_empty() {
        let diagnostics = secrets
            .into_iter()
            .map(|s| {
                Diagnostic::new(s.reason)
                    .at(sources.location(s.marker.as_ref()))
                    .path(s.path.to_string())
                    .with_hint("remove it; provision authenticates through the credential chain (Azure CLI login, workload identity, managed identity, or AZURE_CLIENT_SECRET in the environment)")
            })
            .collect();
        return Err(ConfigError { diagnostics });
    }

    let raw: RawEnvironment = marked_yaml::from_node(&merged).map_err(|e| {
        let path = KeyPath::parse(e.path().unwrap_or(""));
        let message = serde_message(&e);
        let (path, message) = match unknown_field(&e) {
            Some(field) => (path_with_leaf(path, &field), message),
            None => (path, message),
        };
        let location = sources
            .location(tree::locate(&merged, &path))
            .or_else(|| sources.location(e.start_mark().as_ref()));
        let mut d = Diagnostic::new(message).at(location).path(path.to_string());
        if let Some(hint) = unknown_field_hint(&e) {
            d = d.with_hint(hint);
        }
        ConfigError::one(d)
    })?;

    if leaf_abstract {
        return Ok(Environment::Abstract {
            name: name.to_owned(),
            file: leaf_file,
        });
    }
    let mut checker = Checker {
        root: &merged,
        sources: &sources,
        leaf_file: &leaf_file,
        confine,
        diagnostics: Vec::new(),
    };
    let blueprint = blueprint::build(name, raw, &mut checker);
    match blueprint {
        Some(b) if checker.diagnostics.is_empty() => Ok(Environment::Target(Box::new(b))),
        _ => {
            let mut diagnostics = checker.diagnostics;
            if diagnostics.is_empty() {
                diagnostics.push(Diagnostic::new("environment is incomplete").in_file(&leaf_file));
            }
            Err(ConfigError { diagnostics })
        }
    }
}

fn unknown_field(e: &marked_yaml::FromNodeError) -> Option<String> {
    match &**e {
        marked_yaml::Error::UnknownFieldError(field, _, _) => Some(field.clone()),
        _ => None,
    }
}

/// serde's path for an unknown field stops at the enclosing map; name the key itself.
fn path_with_leaf(path: KeyPath, field: &str) -> KeyPath {
    match path.0.last() {
        Some(tree::Segment::Key(k)) if k == field => path,
        _ => path.key(field),
    }
}

fn unknown_field_hint(e: &marked_yaml::FromNodeError) -> Option<String> {
    match &**e {
        marked_yaml::Error::UnknownFieldError(field, expected, _) => {
            let close = expected.iter().find(|k| similar(field, k));
            Some(match close {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("known keys here: {}", expected.join(", ")),
            })
        }
        _ => None,
    }
}

/// Cheap typo detection: same letters modulo `-`/`_` and case, or an edit distance of one or two.
/// Shared with every other did-you-mean (template variables, their values), so they agree.
pub fn similar(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    if norm(a) == norm(b) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            row.push(
                (prev[j] + usize::from(ca != cb))
                    .min(prev[j + 1] + 1)
                    .min(row[j] + 1),
            );
        }
        prev = row;
    }
    prev[b.len()] <= 2
}

fn serde_message(e: &marked_yaml::FromNodeError) -> String {
    match &**e {
        marked_yaml::Error::NotBoolean(_) => "expected `true` or `false`".to_owned(),
        marked_yaml::Error::IntegerParseFailure(_, _) => "expected an integer".to_owned(),
        marked_yaml::Error::FloatParseFailure(_, _) => "expected a number".to_owned(),
        marked_yaml::Error::UnknownFieldError(field, _, _) => format!("unknown key `{field}`"),
        marked_yaml::Error::Other(message, _) => message.clone(),
    }
}

#[cfg(test)]
mod tests;
