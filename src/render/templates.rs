//! The template set: every `*.tera` file under a directory, loaded into one Tera instance with XML
//! escaping, plus the source text kept for mapping findings back to template lines, and the
//! `*.vars.yaml` declarations of the variables each template reads.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tera::Tera;

use super::vars::{self, Declarations};
use crate::config::ConfigError;
use crate::hint::Remedy;

/// A template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates in {dir}: {message}")]
    Read {
        dir: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{file}:{line}:{column}: template syntax error: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: template error: {message}")]
    Template { file: String, message: String },
    #[error("template `{name}` not found in {dir}")]
    Missing { name: String, dir: String },
    /// A deployable render of an environment whose app ids are not all pinned.
    #[error("{file}: the policy pins app ids that are not known: {missing}")]
    Unpinned { file: String, missing: String },
    #[error("{file}: the rendered policy is not well-formed XML ({message})")]
    Malformed { file: String, message: String },
    /// A template reads a variable its declarations do not declare, or a declarations file is
    /// wrong: the template author's problem, located in their file.
    #[error("{file}:{line}:{column}: {message}")]
    Variable {
        file: String,
        line: usize,
        column: usize,
        message: String,
        hint: Option<String>,
    },
    /// The environment's `policy.vars` do not fit the declarations: the environment author's
    /// problems, each located in the environment file that set the value.
    #[error("{0}")]
    Vars(ConfigError),
}

impl Remedy for RenderError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        match self {
            RenderError::Missing { name, dir } => Some(format!(
                "`policy.template` names a file {dir}/{name}; check the name or `policy.templates_dir`"
            ).into()),
            RenderError::Syntax { .. } => Some(
                "check the tag at that position; if it is an APIM named value `{{name}}`, wrap it in {% raw %}…{% endraw %} (Tera uses the same braces)".into(),
            ),
            RenderError::Template { .. } => Some("template variables are listed in templates/README.md".into()),
            RenderError::Malformed { .. } => {
                Some("`provision validate` shows the position in the rendered policy; check the template's tags".into())
            }
            RenderError::Variable { hint, .. } | RenderError::Read { hint, .. } => {
                hint.as_deref().map(Cow::Borrowed)
            }
            RenderError::Unpinned { .. } => Some(
                "once `provision up` has run, pass --live to render with the deployed apps' ids \
                 (the policy `up` stores); else --offline to render them as placeholders for \
                 review, or pin `app_id:` for apps that already exist"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Bounds of the template directory walk: far above any real template set.
const MAX_WALK_ENTRIES: usize = 10_000;
const MAX_WALK_DEPTH: usize = 8;
const MAX_TEMPLATE_FILES: usize = 256;
/// A template or declarations file larger than this is not one.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// Reads one template file, refusing one over [`MAX_TEMPLATE_BYTES`] without reading it whole.
fn read_template(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TEMPLATE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is larger than {MAX_TEMPLATE_BYTES} bytes, which no template is",
                path.display()
            ),
        ));
    }
    Ok(text)
}

/// Loaded templates and their sources.
pub struct TemplateSet {
    tera: Tera,
    dir: PathBuf,
    /// Template name → (display path, text).
    sources: BTreeMap<String, (String, String)>,
    /// Declarations file name (`policies/x.vars.yaml`) → its declarations.
    declarations: BTreeMap<String, Declarations>,
}

/// Escapes text for XML attribute values and element content alike. Unlike Tera's HTML escaper it
/// leaves `/` alone, so URLs stay readable in reviewed policies.
fn escape_xml(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

impl TemplateSet {
    /// Reads every `*.tera` and `*.vars.yaml` file under `dir` (the explicit loader of this module).
    /// The walk is bounded — a template directory holds a few dozen files, and `--templates-dir /`
    /// must not walk the whole filesystem — and its depth bound also ends a symbolic link loop.
    pub fn load(dir: &Path) -> Result<TemplateSet, RenderError> {
        let read_err = |e: std::io::Error| RenderError::Read {
            dir: dir.display().to_string(),
            message: e.to_string(),
            hint: None,
        };
        let too_big = |what: String| {
            RenderError::Read {
            dir: dir.display().to_string(),
            message: what,
            hint: Some(
                "point --templates-dir (or `policy.templates_dir`) at a directory that holds only templates, such as the project's templates/".to_owned(),
            ),
        }
        };
        let mut files = Vec::new();
        let mut visited = 0usize;
        let mut pending = vec![(dir.to_path_buf(), 0usize)];
        while let Some((d, depth)) = pending.pop() {
            for entry in std::fs::read_dir(&d).map_err(read_err)? {
                let entry = entry.map_err(read_err)?;
                visited += 1;
                if visited > MAX_WALK_ENTRIES {
                    return Err(too_big(format!(
                        "more than {MAX_WALK_ENTRIES} entries below it"
                    )));
                }
                let path = entry.path();
                if path.is_dir() {
                    if depth + 1 > MAX_WALK_DEPTH {
                        return Err(too_big(format!(
                            "{} is nested more than {MAX_WALK_DEPTH} directories deep",
                            path.display()
                        )));
                    }
                    pending.push((path, depth + 1));
                } else if path.extension().is_some_and(|e| e == "tera")
                    || path.to_string_lossy().ends_with(".vars.yaml")
                {
                    if files.len() == MAX_TEMPLATE_FILES {
                        return Err(too_big(format!(
                            "more than {MAX_TEMPLATE_FILES} template files"
                        )));
                    }
                    let name = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    let text = read_template(&path).map_err(read_err)?;
                    files.push((name, path.display().to_string(), text));
                }
            }
        }
        files.sort();
        TemplateSet::from_sources(dir, files)
    }

    /// Builds a set from (name, display path, text) triples: templates (`*.tera`) and
    /// declarations (`*.vars.yaml`).
    pub fn from_sources(
        dir: &Path,
        files: Vec<(String, String, String)>,
    ) -> Result<TemplateSet, RenderError> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".xml.tera"]);
        tera.set_escape_fn(escape_xml);
        let (declaration_files, files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(name, _, _)| name.ends_with(".vars.yaml"));
        let sources: BTreeMap<String, (String, String)> = files
            .into_iter()
            .map(|(name, path, text)| (name, (path, text)))
            .collect();
        let mut declarations = BTreeMap::new();
        for (name, path, text) in declaration_files {
            let parsed = vars::parse(&path, &text)?;
            if !sources
                .keys()
                .any(|t| t.ends_with(".tera") && vars::declarations_name(t) == name)
            {
                let template = name.trim_end_matches(".vars.yaml");
                return Err(RenderError::Variable {
                    file: path,
                    line: 1,
                    column: 1,
                    message: format!("declares the variables of {template}.xml.tera, which does not exist"),
                    hint: Some("a declarations file sits beside its template: policies/<name>.xml.tera and policies/<name>.vars.yaml".to_owned()),
                });
            }
            declarations.insert(name, parsed);
        }
        // Parse one by one first so a syntax error names its own file; then add all together so
        // includes and inheritance resolve.
        for (name, (path, text)) in &sources {
            if let Err(e) = Tera::default().add_raw_template(name, text)
                && let Some(err) = syntax_error(path, &e)
            {
                return Err(err);
            }
        }
        tera.add_raw_templates(
            sources
                .iter()
                .map(|(name, (_, text))| (name.as_str(), text.as_str())),
        )
        .map_err(|e| RenderError::Template {
            file: dir.display().to_string(),
            message: chain(&e),
        })?;
        Ok(TemplateSet {
            tera,
            dir: dir.to_path_buf(),
            sources,
            declarations,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Renders one template with a JSON context.
    pub fn render(&self, name: &str, context: &Value) -> Result<String, RenderError> {
        let Some((path, _)) = self.sources.get(name) else {
            return Err(RenderError::Missing {
                name: name.to_owned(),
                dir: self.dir.display().to_string(),
            });
        };
        let context =
            tera::Context::from_value(context.clone()).map_err(|e| RenderError::Template {
                file: path.clone(),
                message: chain(&e),
            })?;
        let text = self
            .tera
            .render(name, &context)
            .map_err(|e| RenderError::Template {
                file: path.clone(),
                message: chain(&e),
            })?;
        Ok(tidy(&text))
    }

    /// The names of the templates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// A template's text.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.sources.get(name).map(|(_, t)| t.as_str())
    }

    /// The declarations of the variables a template reads, when it has a declarations file.
    pub fn declarations(&self, template: &str) -> Option<&Declarations> {
        self.declarations.get(&vars::declarations_name(template))
    }

    /// Every declarations file, for the environment schema.
    pub fn all_declarations(&self) -> impl Iterator<Item = &Declarations> {
        self.declarations.values()
    }

    /// The display path of a template, or an error naming what is missing.
    pub fn path(&self, name: &str) -> Result<&str, RenderError> {
        match self.sources.get(name) {
            Some((path, _)) => Ok(path),
            None => Err(RenderError::Missing {
                name: name.to_owned(),
                dir: self.dir.display().to_string(),
            }),
        }
    }

    /// Refuses a template that reads a variable its declarations do not declare, through any
    /// template it includes: at render time such a read would print nothing, or take an `if` as
    /// false, without a word.
    pub fn check_reads(&self, template: &str) -> Result<(), RenderError> {
        self.path(template)?;
        let declared = self.declarations(template);
        let declarations_file = declared.map_or_else(
            || vars::declarations_name(self.sources.get(template).map_or(template, |(p, _)| p)),
            |d| d.file.clone(),
        );
        let mut seen = std::collections::BTreeSet::new();
        let mut pending = vec![template.to_owned()];
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some((path, text)) = self.sources.get(&name) else {
                continue;
            };
            let scan = vars::scan(text);
            for read in &scan.reads {
                let (line, column) = vars::line_column(text, read.offset);
                let error = |message: String, hint: String| RenderError::Variable {
                    file: path.clone(),
                    line,
                    column,
                    message,
                    hint: Some(hint),
                };
                let Some(var) = &read.name else {
                    return Err(error(
                        "the template reads `vars` as a whole, so its variables cannot be checked against their declarations".to_owned(),
                        "read each variable by name, e.g. `vars.tokens_per_minute`".to_owned(),
                    ));
                };
                if declared.is_some_and(|d| d.vars.contains_key(var)) {
                    continue;
                }
                let close =
                    declared.and_then(|d| d.vars.keys().find(|k| crate::config::similar(var, k)));
                return Err(error(
                    format!(
                        "the template reads `vars.{var}`, which {declarations_file} does not declare"
                    ),
                    match close {
                        Some(k) => format!("did you mean `vars.{k}`?"),
                        None => format!(
                            "declare `{var}` in {declarations_file} (type, description, and a default or `required: true`)"
                        ),
                    },
                ));
            }
            pending.extend(scan.references);
        }
        Ok(())
    }

    /// The templates' sources, for mapping rendered lines back: (display path, text).
    pub fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources.values().map(|(p, t)| (p.as_str(), t.as_str()))
    }
}

/// Rendered policies have `\n` line endings, no blank lines and one final newline, whatever the
/// templates' whitespace control: reviewers see stable diffs and template authors need no `{%-`.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A parse error's file, line and column, from the pest report Tera wraps (`--> 3:17`).
fn syntax_error(path: &str, error: &tera::Error) -> Option<RenderError> {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if let Some(arrow) = text.find("--> ") {
            let rest = &text[arrow + 4..];
            let position: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ':')
                .collect();
            let mut parts = position.split(':').filter_map(|p| p.parse::<usize>().ok());
            let (line, column) = (parts.next()?, parts.next().unwrap_or(1));
            let message = text
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("= "))
                .unwrap_or("invalid template syntax")
                .to_owned();
            return Some(RenderError::Syntax {
                file: path.to_owned(),
                line,
                column,
                message,
            });
        }
        source = e.source();
    }
    None
}

/// Tera's errors nest the useful part; join the chain into one line.
fn chain(error: &tera::Error) -> String {
    use std::error::Error;
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `--templates-dir /` walked the whole filesystem, and a symbolic link loop
    /// would never end.
    #[test]
    fn the_template_walk_is_bounded_in_depth_and_by_link_loops() {
        let dir = tempfile::tempdir().unwrap();
        let deep =
            (0..=MAX_WALK_DEPTH).fold(dir.path().to_path_buf(), |p, i| p.join(format!("d{i}")));
        std::fs::create_dir_all(&deep).unwrap();
        let error = TemplateSet::load(dir.path()).err().expect("too deep");
        assert!(
            error.to_string().ends_with(&format!(
                "is nested more than {MAX_WALK_DEPTH} directories deep"
            )),
            "{error}"
        );
        assert!(error.hint().unwrap().starts_with("point --templates-dir"));

        let looped = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(looped.path(), looped.path().join("again")).unwrap();
        let error = TemplateSet::load(looped.path()).err().expect("a loop ends");
        assert!(error.to_string().contains("directories deep"), "{error}");
    }

    fn set(files: &[(&str, &str)]) -> Result<TemplateSet, RenderError> {
        TemplateSet::from_sources(
            Path::new("t"),
            files
                .iter()
                .map(|(n, t)| (n.to_string(), format!("t/{n}"), t.to_string()))
                .collect(),
        )
    }

    #[test]
    fn values_are_xml_escaped_and_named_values_survive() {
        let s = set(&[(
            "p.xml.tera",
            "<a n=\"{{ v }}\">{% raw %}{{tenant-id}}{% endraw %} @(context.Variables[\"x\"])</a>",
        )])
        .unwrap();
        let out = s
            .render("p.xml.tera", &serde_json::json!({"v": "<&\"'>/"}))
            .unwrap();
        assert_eq!(
            out,
            "<a n=\"&lt;&amp;&quot;&apos;&gt;/\">{{tenant-id}} @(context.Variables[\"x\"])</a>\n"
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = set(&[
            ("ok.xml.tera", "fine"),
            ("bad.xml.tera", "line one\n<a>{{ x </a>\n"),
        ])
        .err()
        .unwrap();
        match err {
            RenderError::Syntax { file, line, .. } => {
                assert_eq!(file, "t/bad.xml.tera");
                assert_eq!(line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
