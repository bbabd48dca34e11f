//! What `provision validate` finds in one environment, as data: problems with its values or its
//! templates (located, with their remedy), and lint findings in the policy it renders, each traced
//! back to the template line that wrote it where that is unambiguous. Pure: the environment and
//! its templates are loaded by the caller.

use std::borrow::Cow;

use super::{Finding, LintContext, lint};
use crate::config::{Blueprint, ConfigError};
use crate::hint::Remedy;
use crate::render::{self, RenderError, TemplateSet};

/// A problem that stops the policy from rendering: in the environment's values (`rule:
/// environment`) or in a template (`rule: template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub rule: &'static str,
    /// The key path in the environment.
    pub path: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The quoted source line under the message (YAML syntax errors).
    pub excerpt: Option<String>,
}

impl InputProblem {
    /// `file:line:col: path: message`, as errors read everywhere.
    pub fn located_message(&self) -> String {
        let mut location = String::new();
        if let Some(f) = &self.file {
            location.push_str(f);
            if let (Some(l), Some(c)) = (self.line, self.column) {
                location.push_str(&format!(":{l}:{c}"));
            }
            location.push_str(": ");
        }
        if let Some(path) = &self.path {
            location.push_str(&format!("{path}: "));
        }
        format!("{location}{}", self.message)
    }
}

/// A lint finding and the template line that wrote its element, when exactly one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedFinding {
    pub finding: Finding,
    pub template: Option<(String, usize)>,
}

/// Every problem with an environment's values, one per diagnostic.
pub fn environment_problems(error: &ConfigError) -> Vec<InputProblem> {
    error
        .diagnostics
        .iter()
        .map(|d| {
            let (file, line, column) = match &d.location {
                Some(l) => (Some(l.file.clone()), Some(l.line), Some(l.column)),
                None => (d.file.clone(), None, None),
            };
            InputProblem {
                file,
                line,
                column,
                rule: "environment",
                path: d.path.clone(),
                message: d.message.clone(),
                hint: d.hint.clone(),
                excerpt: d.excerpt.clone(),
            }
        })
        .collect()
}

/// A template that cannot be loaded or rendered, located where the error says.
pub fn template_problems(error: &RenderError) -> Vec<InputProblem> {
    if let RenderError::Vars(config) = error {
        return environment_problems(config);
    }
    let hint = error.hint().map(Cow::into_owned);
    let problem = |file: Option<&String>, line, column, message: String| InputProblem {
        file: file.cloned(),
        line,
        column,
        rule: "template",
        path: None,
        message,
        hint: hint.clone(),
        excerpt: None,
    };
    vec![match error {
        RenderError::Variable {
            file,
            line,
            column,
            message,
            ..
        } => problem(Some(file), Some(*line), Some(*column), message.clone()),
        RenderError::Syntax {
            file,
            line,
            column,
            message,
        } => problem(
            Some(file),
            Some(*line),
            Some(*column),
            format!("template syntax error: {message}"),
        ),
        other => problem(None, None, None, other.to_string()),
    }]
}

/// Renders the environment's policy for review (placeholders for unpinned app ids) and lints it.
pub fn check(
    blueprint: &Blueprint,
    templates: &TemplateSet,
) -> Result<Vec<TracedFinding>, Vec<InputProblem>> {
    let rendered =
        render::for_review(blueprint, templates, true).map_err(|e| template_problems(&e))?;
    Ok(lint_rendered(blueprint, &rendered.xml)
        .into_iter()
        .map(|finding| TracedFinding {
            template: template_origin(templates, &finding),
            finding,
        })
        .collect())
}

/// Lints a rendered policy against the environment it was rendered for.
fn lint_rendered(blueprint: &Blueprint, xml: &str) -> Vec<Finding> {
    let (api, clients) = render::preview_app_ids(blueprint);
    let ctx = LintContext {
        tenant_id: blueprint.tenant_id.as_str(),
        api_app_id: &api,
        client_app_ids: &clients,
    };
    lint(xml, &ctx)
}

/// The template line that wrote the element a finding is about, when exactly one template line
/// opens that element. Tera keeps no source map, so this is a search, and says nothing when unsure.
fn template_origin(templates: &TemplateSet, finding: &Finding) -> Option<(String, usize)> {
    let element = finding.element.as_ref()?;
    let opening = format!("<{element}");
    let mut hits = Vec::new();
    for (file, text) in templates.sources() {
        for (i, line) in text.lines().enumerate() {
            if let Some(at) = line.find(&opening) {
                let next = line[at + opening.len()..].chars().next();
                if next.is_none_or(|c| c.is_whitespace() || c == '>' || c == '/') {
                    hits.push((file.to_owned(), i + 1));
                }
            }
        }
    }
    (hits.len() == 1).then(|| hits.remove(0))
}
