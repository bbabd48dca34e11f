//! A saved plan (`plan --out FILE`, `up --plan FILE`): the plan a reviewer approved, with a
//! fingerprint of everything it was made from, so that `up` applies exactly that plan or
//! nothing. As Terraform's saved plans, it is bound to its inputs (the environment file and
//! those it extends, the templates, the tool's version); unlike them it carries no state to
//! apply blindly: `up --plan` reads everything again and refuses when any fingerprint, or the
//! plan made from the fresh reads, differs from the saved one.
//!
//! It holds what a plan shows (ids, names, the policy document) and never a secret or a token:
//! nothing `provision` reads carries one (APIM never returns secret named values, apim.md §3.7).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Observation, Plan};
use crate::hint::{Hinted, Remedy};
use crate::render::TemplateSet;
use crate::resources::fingerprint::{Fingerprint, sha256_hex};
use crate::resources::{Address, Change, Kind};

/// The `format` of the files this version writes and reads.
pub const FORMAT: &str = "provision-plan/1";

/// Larger than any plan of a real environment (the policy document, at most 256 KiB in APIM,
/// dominates), and small enough to refuse a wrong file at once.
pub const MAX_PLAN_BYTES: usize = 4 * 1024 * 1024;

/// The tool's version, as a plan file is bound to it.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plan file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    /// Always [`FORMAT`].
    pub format: String,
    pub env: String,
    /// The `provision` version that made it.
    pub tool_version: String,
    /// Every file the plan was made from: the environment file, those it extends, the templates.
    pub inputs: Vec<Input>,
    /// The expiry mark (`lifetime:`) the plan put on what it creates, RFC 3339.
    pub expires: Option<String>,
    /// Whether applying it changes anything.
    pub changes: bool,
    /// In plan order.
    pub resources: Vec<SavedResource>,
    /// Where it was read from (not in the file).
    #[serde(skip)]
    pub file: std::path::PathBuf,
}

/// A file the plan depends on and its content's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub file: String,
    pub sha256: String,
}

/// The inputs of a plan: the environment's files (display path, text) as the loader read
/// them, then the templates.
pub fn inputs(files: &[(String, String)], templates: &TemplateSet) -> Vec<Input> {
    let files = files.iter().map(|(f, t)| (f.as_str(), t.as_str()));
    files
        .chain(templates.sources())
        .map(|(file, text)| Input::of(file, text.as_bytes()))
        .collect()
}

impl Input {
    pub fn of(file: impl Into<String>, content: &[u8]) -> Input {
        Input {
            file: file.into(),
            sha256: sha256_hex(content),
        }
    }
}

/// One resource of the plan: what `up` does to it and the state it was planned from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedResource {
    pub kind: Kind,
    pub name: String,
    pub action: SavedAction,
    /// For a create: the desired state.
    pub desired: Option<Value>,
    /// For an update: field by field.
    pub changes: Vec<SavedChange>,
    /// Why a replace or delete.
    pub reason: Option<String>,
    pub fingerprint: Fingerprint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SavedAction {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedChange {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl SavedResource {
    fn address(&self) -> Address {
        Address::new(self.kind, self.name.clone())
    }

    /// Everything but the fingerprint: what `up` would do.
    fn same_action(&self, other: &SavedResource) -> bool {
        (&self.action, &self.desired, &self.changes, &self.reason)
            == (&other.action, &other.desired, &other.changes, &other.reason)
    }
}

impl SavedPlan {
    /// The plan with the fingerprint of each resource as `observation` read it.
    pub fn new(
        env: &str,
        inputs: Vec<Input>,
        expires: Option<String>,
        plan: &Plan,
        observation: &Observation,
    ) -> SavedPlan {
        let resources = plan
            .resources
            .iter()
            .map(|r| {
                let (action, desired, changes, reason) = match &r.change {
                    Change::Create => (SavedAction::Create, Some(r.desired.clone()), vec![], None),
                    Change::Update(fields) => (
                        SavedAction::Update,
                        None,
                        fields
                            .iter()
                            .map(|c| SavedChange {
                                path: c.path.clone(),
                                old: c.old.clone(),
                                new: c.new.clone(),
                            })
                            .collect(),
                        None,
                    ),
                    Change::Replace { reason } => {
                        (SavedAction::Replace, None, vec![], Some(reason.clone()))
                    }
                    Change::Delete { reason } => {
                        (SavedAction::Delete, None, vec![], Some(reason.clone()))
                    }
                    Change::NoOp => (SavedAction::NoOp, None, vec![], None),
                };
                let fingerprint = if matches!(r.change, Change::Delete { .. }) {
                    Fingerprint::Listed
                } else if !observation.was_read(&r.address) {
                    Fingerprint::NotRead
                } else {
                    Fingerprint::of(
                        observation.observed(&r.address),
                        observation.etags.get(&r.address).map(String::as_str),
                        &r.desired,
                    )
                };
                SavedResource {
                    kind: r.address.kind,
                    name: r.address.name.clone(),
                    action,
                    desired,
                    changes,
                    reason,
                    fingerprint,
                }
            })
            .collect();
        SavedPlan {
            format: FORMAT.to_owned(),
            env: env.to_owned(),
            tool_version: TOOL_VERSION.to_owned(),
            inputs,
            expires,
            changes: plan.has_changes(),
            resources,
            file: Default::default(),
        }
    }

    /// The file's text: pretty JSON, for review, ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// A plan file's bytes, checked: within [`MAX_PLAN_BYTES`], text without NUL, JSON, of
    /// [`FORMAT`], with no field this version does not know.
    pub fn parse(bytes: &[u8]) -> Result<SavedPlan, PlanFileError> {
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(PlanFileError::TooLarge);
        }
        if let Some(at) = bytes.iter().position(|b| *b == 0) {
            return Err(PlanFileError::Nul { at });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| PlanFileError::NotUtf8 {
            at: e.valid_up_to(),
        })?;
        let json: Value = serde_json::from_str(text).map_err(|e| PlanFileError::NotJson {
            line: e.line(),
            column: e.column(),
            reason: e.to_string(),
        })?;
        match json.get("format") {
            Some(Value::String(f)) if f == FORMAT => {}
            Some(other) => {
                let shown: String = other.to_string().chars().take(60).collect();
                return Err(PlanFileError::Format { found: shown });
            }
            None => {
                return Err(PlanFileError::Format {
                    found: "none".into(),
                });
            }
        }
        serde_json::from_value(json).map_err(|e| PlanFileError::Shape {
            reason: e.to_string(),
        })
    }

    /// What differs between the inputs the plan was made from and `now`'s, one line each.
    pub fn inputs_changed(&self, now: &[Input]) -> Vec<String> {
        let mut lines = Vec::new();
        if self.tool_version != TOOL_VERSION {
            lines.push(format!(
                "the plan was made by provision {}, and this is provision {TOOL_VERSION}",
                self.tool_version
            ));
        }
        for saved in &self.inputs {
            match now.iter().find(|n| n.file == saved.file) {
                None => lines.push(format!("{} is no longer read", saved.file)),
                Some(n) if n.sha256 != saved.sha256 => lines.push(format!(
                    "{} changed since the plan (SHA-256 {}… → {}…)",
                    saved.file,
                    saved.sha256.chars().take(12).collect::<String>(),
                    n.sha256.chars().take(12).collect::<String>()
                )),
                Some(_) => {}
            }
        }
        for n in now {
            if !self.inputs.iter().any(|s| s.file == n.file) {
                lines.push(format!("{} is new since the plan", n.file));
            }
        }
        lines
    }

    /// The environment to apply it to: its own; `asked` (`--env`), if given, must be it.
    pub fn env_for(&self, asked: Option<&str>) -> anyhow::Result<String> {
        let file = &self.file;
        match asked {
            Some(asked) if asked != self.env => Err(Hinted::error(
                format!(
                    "{} is a plan of environment {}, not of {asked}",
                    file.display(),
                    self.env
                ),
                format!(
                    "drop --env (the plan names its environment), or save a plan of {asked} \
                     with `provision plan --env {asked} --out FILE`"
                ),
            )),
            _ => Ok(self.env.clone()),
        }
    }

    /// Refuses when the environment file, a file it extends, a template or the tool's version
    /// differs from what the plan was made with: the same reads would plan something else.
    pub fn refuse_changed_inputs(&self, now: &[Input]) -> Result<(), StalePlan> {
        let changed = self.inputs_changed(now);
        if changed.is_empty() {
            return Ok(());
        }
        Err(StalePlan {
            lines: changed.iter().map(|c| format!("stale plan: {c}")).collect(),
            again: self.again(),
        })
    }

    /// What `checked` applies: with the expiry the reviewed plan shows, not one measured from
    /// now.
    pub fn bind(&self, checked: super::Checked) -> super::Checked {
        match &self.expires {
            Some(expires) => checked.with_expiry(expires.clone()),
            None => checked,
        }
    }

    /// The resources that changed since the plan, between it and the plan made again from
    /// `observation`.
    pub fn stale_now(&self, plan: &Plan, observation: &Observation) -> Vec<Stale> {
        let (inputs, expires) = (self.inputs.clone(), self.expires.clone());
        let fresh = SavedPlan::new(&self.env, inputs, expires, plan, observation);
        self.stale(&fresh)
    }

    /// Refuses when any resource in `stale` changed since the plan.
    pub fn refuse_stale(&self, stale: &[Stale]) -> Result<(), StalePlan> {
        if stale.is_empty() {
            return Ok(());
        }
        Err(StalePlan {
            lines: stale.iter().map(Stale::line).collect(),
            again: self.again(),
        })
    }

    /// A plan whose expiry mark (from `lifetime:`) has passed by `now` would create what the next
    /// `down --expired` tears down at once: stale too.
    pub fn refuse_expired(&self, now: jiff::Timestamp) -> Result<(), StalePlan> {
        let Some(expires) = &self.expires else {
            return Ok(());
        };
        match expires.parse::<jiff::Timestamp>() {
            Ok(at) if at > now => Ok(()),
            _ => Err(StalePlan {
                lines: vec![format!(
                    "stale plan: its expiry mark {expires} has passed, so what it creates would \
                     be torn down by the next `down --expired`"
                )],
                again: self.again(),
            }),
        }
    }

    /// The command that makes this plan again.
    fn again(&self) -> String {
        format!(
            "provision plan --env {} --out {}",
            self.env,
            self.file.display()
        )
    }

    /// Every resource that changed between the plan and `fresh` (the same plan made again), in
    /// plan order, then those that appeared.
    pub fn stale(&self, fresh: &SavedPlan) -> Vec<Stale> {
        let mut stale = Vec::new();
        for saved in &self.resources {
            let now = fresh
                .resources
                .iter()
                .find(|f| f.kind == saved.kind && f.name == saved.name);
            let what = match now {
                None => Some("was deleted since the plan".to_owned()),
                Some(now) => saved
                    .fingerprint
                    .change_since(&now.fingerprint)
                    .or_else(|| {
                        (!saved.same_action(now)).then(|| {
                            "would now be changed differently than the saved plan says".to_owned()
                        })
                    }),
            };
            if let Some(what) = what {
                stale.push(Stale {
                    address: saved.address(),
                    saved: Some(saved.fingerprint.clone()),
                    found: now.map(|n| n.fingerprint.clone()),
                    what,
                });
            }
        }
        for now in &fresh.resources {
            if !self
                .resources
                .iter()
                .any(|s| s.kind == now.kind && s.name == now.name)
            {
                stale.push(Stale {
                    address: now.address(),
                    saved: None,
                    found: Some(now.fingerprint.clone()),
                    what: "appeared since the plan".to_owned(),
                });
            }
        }
        stale
    }
}

/// A resource that is not as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub address: Address,
    pub saved: Option<Fingerprint>,
    pub found: Option<Fingerprint>,
    /// `changed (ETag "a" → "b")`, `was deleted since the plan`…
    pub what: String,
}

impl Stale {
    pub fn line(&self) -> String {
        format!("stale plan: {} {}", self.address, self.what)
    }
}

/// A plan file that can not be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("larger than {MAX_PLAN_BYTES} bytes, which no plan file is")]
    TooLarge,
    #[error("a NUL byte at offset {at}: a plan file is JSON text")]
    Nul { at: usize },
    #[error("not UTF-8 text from byte {at}")]
    NotUtf8 { at: usize },
    #[error("{line}:{column}: not JSON: {reason}")]
    NotJson {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("`format` is {found}, and this version reads \"{FORMAT}\"")]
    Format { found: String },
    #[error("not a plan file of this version: {reason}")]
    Shape { reason: String },
}

impl Remedy for PlanFileError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(
            "pass the file `provision plan --env ENV --out FILE` wrote, unedited; or make a new \
             one with that command"
                .into(),
        )
    }
}

/// `up --plan` refused: what the plan was made from changed since. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{}", lines.join("\n"))]
pub struct StalePlan {
    /// `stale plan: …`, one per change.
    pub lines: Vec<String>,
    /// The `plan` command to run again.
    pub again: String,
}

impl Remedy for StalePlan {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(
            format!(
                "nothing was written; run `{}` again and review it",
                self.again
            )
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_text() -> String {
        let plan = SavedPlan {
            format: FORMAT.to_owned(),
            env: "local".to_owned(),
            tool_version: TOOL_VERSION.to_owned(),
            inputs: vec![Input::of("environments/local.yaml", b"x")],
            expires: None,
            changes: false,
            resources: vec![SavedResource {
                kind: Kind::Policy,
                name: "llm".to_owned(),
                action: SavedAction::NoOp,
                desired: None,
                changes: vec![],
                reason: None,
                fingerprint: Fingerprint::Etag {
                    etag: "\"a\"".to_owned(),
                },
            }],
            file: Default::default(),
        };
        plan.to_text()
    }

    #[test]
    fn a_written_plan_reads_back_the_same() {
        let text = plan_text();
        let plan = SavedPlan::parse(text.as_bytes()).unwrap();
        assert_eq!(plan.to_text(), text);
        assert!(text.contains(r#""by": "etag""#), "{text}");
        assert!(plan.stale(&plan).is_empty());
        assert!(plan.inputs_changed(&plan.inputs).is_empty());
    }

    #[test]
    fn a_wrong_file_is_refused_with_what_is_wrong() {
        let text = plan_text();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![b' '; MAX_PLAN_BYTES + 1], "larger than 4194304 bytes"),
            (b"{\"a\":\0}".to_vec(), "a NUL byte at offset 5"),
            (vec![b'{', 0xff], "not UTF-8 text from byte 1"),
            (b"plan".to_vec(), "1:1: not JSON: "),
            (
                text.replace(FORMAT, "provision-plan/9").into_bytes(),
                "`format` is \"provision-plan/9\"",
            ),
            (b"{}".to_vec(), "`format` is none"),
            (
                text.replacen("\"env\"", "\"extra\": 1, \"env\"", 1)
                    .into_bytes(),
                "unknown field `extra`",
            ),
            (
                text.replace("\"by\": \"etag\"", "\"by\": \"guess\"")
                    .into_bytes(),
                "not a plan file of this version",
            ),
        ];
        for (bytes, expected) in cases {
            let error = SavedPlan::parse(&bytes).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{error} should contain {expected}"
            );
            assert!(error.hint().is_some());
        }
    }

    #[test]
    fn a_changed_input_is_named() {
        let plan = SavedPlan::parse(plan_text().as_bytes()).unwrap();
        let lines = plan.inputs_changed(&[Input::of("environments/local.yaml", b"y")]);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("environments/local.yaml changed since the plan (SHA-256 "),
            "{lines:?}"
        );
    }

    #[test]
    fn a_changed_etag_is_stale_and_says_how() {
        let plan = SavedPlan::parse(plan_text().as_bytes()).unwrap();
        let mut fresh = plan.clone();
        fresh.resources[0].fingerprint = Fingerprint::Etag {
            etag: "\"b\"".to_owned(),
        };
        let stale = plan.stale(&fresh);
        assert_eq!(
            stale.iter().map(Stale::line).collect::<Vec<_>>(),
            ["stale plan: apim api policy llm changed (ETag \"a\" → \"b\")"]
        );
        let mut other = plan.clone();
        other.resources[0].action = SavedAction::Update;
        assert_eq!(
            plan.stale(&other)[0].line(),
            "stale plan: apim api policy llm would now be changed differently than the saved \
             plan says"
        );
    }
}
