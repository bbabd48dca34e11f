//! A GitHub Actions runner for the example workflows: jobs in `needs` order (a one-key matrix as
//! legs, one at a time, fail-fast), each step's `if:`, `run:` steps with GitHub's bash
//! (`bash --noprofile --norc -eo pipefail`), `$GITHUB_OUTPUT`/`$GITHUB_ENV`/`$GITHUB_STEP_SUMMARY`,
//! the OIDC request variables from the sandbox for jobs with `id-token: write`, and a small local
//! behaviour per action the examples use. Anything else (a context, function, key or action it
//! does not know) is an error of the run, never silently skipped.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::bench::{Bench, JobDirs, read_outputs};
use super::yaml::{self, Scope, Y};

/// What triggered the run.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub git_ref: String,
    pub sha: String,
    /// Number and head commit, for `pull_request`.
    pub pull_request: Option<(u64, String)>,
}

impl Event {
    pub fn pull_request(number: u64, head_sha: &str) -> Event {
        Event {
            name: "pull_request".into(),
            git_ref: format!("refs/pull/{number}/merge"),
            sha: "5eed000000000000000000000000000000000001".into(),
            pull_request: Some((number, head_sha.into())),
        }
    }

    pub fn push_main() -> Event {
        Event {
            name: "push".into(),
            git_ref: "refs/heads/main".into(),
            sha: "5eed000000000000000000000000000000000002".into(),
            pull_request: None,
        }
    }

    pub fn schedule() -> Event {
        Event {
            name: "schedule".into(),
            ..Event::push_main()
        }
    }
}

/// The repository's settings a run reads: its name, repository variables, and per GitHub
/// environment the variables that override them there.
#[derive(Debug, Clone, Default)]
pub struct Repo {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    pub environments: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran(i32),
    Skipped,
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: String,
    pub id: Option<String>,
    pub outcome: Outcome,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobResult {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

#[derive(Debug, Clone)]
pub struct JobReport {
    /// `job` or `job (leg)`.
    pub name: String,
    pub environment: Option<String>,
    pub result: JobResult,
    pub steps: Vec<StepReport>,
    pub summary: String,
    pub workspace: std::path::PathBuf,
}

impl JobReport {
    pub fn step(&self, name: &str) -> &StepReport {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{}: no step named {name}", self.name))
    }

    /// Every step's outcome, for one exact assertion.
    pub fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.steps
            .iter()
            .map(|s| (s.name.clone(), s.outcome.clone()))
            .collect()
    }
}

#[derive(Debug)]
pub struct RunReport {
    pub jobs: Vec<JobReport>,
}

impl RunReport {
    pub fn job(&self, name: &str) -> &JobReport {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .unwrap_or_else(|| panic!("no job {name} in {:?}", self.names()))
    }

    pub fn names(&self) -> Vec<(String, JobResult)> {
        self.jobs
            .iter()
            .map(|j| (j.name.clone(), j.result))
            .collect()
    }
}

pub struct Github<'a> {
    pub bench: &'a Bench,
    pub repo: &'a Repo,
    /// The run id and number of the merged pull request's successful run, for deploy's lookup.
    pub merged: Option<(u64, u64)>,
}

const TOP_KEYS: [&str; 6] = ["name", "on", "permissions", "concurrency", "env", "jobs"];
const JOB_KEYS: [&str; 10] = [
    "name",
    "runs-on",
    "timeout-minutes",
    "permissions",
    "environment",
    "env",
    "steps",
    "needs",
    "strategy",
    "concurrency",
];
const STEP_KEYS: [&str; 8] = [
    "name",
    "id",
    "uses",
    "with",
    "run",
    "env",
    "if",
    "timeout-minutes",
];
const GITHUB_FIELDS: [&str; 10] = [
    "repository",
    "repository_owner",
    "sha",
    "ref",
    "event_name",
    "run_id",
    "token",
    "workspace",
    "server_url",
    "job",
];

/// Checks a whole workflow before anything runs: known keys, actions pinned by commit with a
/// version comment, and every expression within the supported set.
pub fn check(raw: &str, workflow: &Y) -> Result<(), String> {
    for (key, _) in workflow.entries() {
        if !TOP_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "workflow key `{key}` is not supported by the runner"
            ));
        }
    }
    for line in raw.lines() {
        let Some(action) = line
            .trim_start()
            .trim_start_matches("- ")
            .strip_prefix("uses:")
        else {
            continue;
        };
        let (action, comment) = action.split_once('#').unwrap_or((action, ""));
        let sha = action.trim().rsplit_once('@').map(|(_, r)| r).unwrap_or("");
        let pinned = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
        if !pinned || !comment.trim().starts_with('v') {
            return Err(format!(
                "`{}`: pin actions by full commit SHA with a `# vX.Y.Z` comment",
                line.trim()
            ));
        }
    }
    let mut strings = Vec::new();
    workflow.walk("", &mut strings);
    for (path, text) in strings {
        let mut exprs: Vec<&str> = yaml::placeholders(text)
            .map_err(|e| format!("{path}: {e}"))?
            .into_iter()
            .map(|(_, _, inner)| inner)
            .collect();
        if path.ends_with(".if") {
            exprs = vec![yaml::unwrap(text)];
        }
        for inner in exprs {
            let expr = yaml::parse_expr(inner).map_err(|e| format!("{path}: {e}"))?;
            let mut paths = Vec::new();
            expr.paths(&mut paths);
            for p in paths {
                known_path(&p).map_err(|e| format!("{path}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn known_path(p: &[String]) -> Result<(), String> {
    let p: Vec<&str> = p.iter().map(String::as_str).collect();
    let ok = match p.as_slice() {
        ["vars" | "env" | "matrix", _] => true,
        ["steps", _, "outputs", _] => true,
        ["github", field] => GITHUB_FIELDS.contains(field),
        ["github", "event", "pull_request", "number"] => true,
        ["github", "event", "pull_request", "head", "sha"] => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not in the runner's expression set (vars.*, env.*, matrix.*, \
             steps.*.outputs.*, github.{{{}}}, github.event.pull_request.{{number,head.sha}})",
            p.join("."),
            GITHUB_FIELDS.join(",")
        ))
    }
}

/// The contexts of one job at one moment.
struct JobScope<'a> {
    github: BTreeMap<&'static str, String>,
    event: &'a Event,
    vars: BTreeMap<String, String>,
    matrix: BTreeMap<String, String>,
    /// `None` where GitHub offers no `env` context: workflow and job `env:` and `environment:`
    /// (the "Context availability" table of GitHub's contexts reference).
    env: Option<BTreeMap<String, String>>,
    steps: BTreeMap<String, BTreeMap<String, String>>,
    failed: bool,
    /// The job's `GITHUB_TOKEN` permissions (`pull-requests` → `write`), which the actions that
    /// call GitHub's API need.
    token: BTreeMap<String, String>,
}

impl Scope for JobScope<'_> {
    fn lookup(&self, path: &[&str]) -> Result<String, String> {
        let found = match path {
            ["vars", name] => self.vars.get(*name).cloned(),
            ["matrix", name] => Some(
                self.matrix
                    .get(*name)
                    .cloned()
                    .ok_or_else(|| format!("matrix.{name}: the job has no such matrix key"))?,
            ),
            ["env", name] => match &self.env {
                Some(env) => env.get(*name).cloned(),
                None => return Err(format!("env.{name}: GitHub has no env context here")),
            },
            ["steps", id, "outputs", name] => {
                self.steps.get(*id).and_then(|o| o.get(*name)).cloned()
            }
            ["github", "event", "pull_request", "number"] => {
                self.event.pull_request.as_ref().map(|(n, _)| n.to_string())
            }
            ["github", "event", "pull_request", "head", "sha"] => {
                self.event.pull_request.as_ref().map(|(_, sha)| sha.clone())
            }
            ["github", field] => self.github.get(field).cloned(),
            _ => return Err(format!("`{}` is not in the runner's set", path.join("."))),
        };
        Ok(found.unwrap_or_default())
    }

    fn failed(&self) -> bool {
        self.failed
    }
}

impl Github<'_> {
    /// Runs every job of `workflow` for `event`. `Err` when the workflow uses something the
    /// runner does not support; job and step failures are in the report.
    pub fn run(&self, workflow: &Path, event: &Event, run_id: u64) -> Result<RunReport, String> {
        let raw = std::fs::read_to_string(workflow).map_err(|e| e.to_string())?;
        let wf = yaml::load(workflow)?;
        check(&raw, &wf)?;
        let jobs = wf.get("jobs").ok_or("the workflow has no jobs")?;
        let mut report = RunReport { jobs: Vec::new() };
        let mut results: BTreeMap<String, JobResult> = BTreeMap::new();
        for (id, job) in order(jobs)? {
            let needs = needs(job);
            let blocked = needs
                .iter()
                .any(|n| results.get(n) != Some(&JobResult::Success));
            let legs = legs(job)?;
            let fail_fast = job
                .get("strategy")
                .and_then(|s| s.get("fail-fast"))
                .and_then(Y::str)
                != Some("false");
            let mut result = JobResult::Success;
            for leg in legs {
                let name = match &leg {
                    Some((_, value)) => format!("{id} ({value})"),
                    None => id.clone(),
                };
                let leg_report = if blocked {
                    skipped(name, JobResult::Skipped)
                } else if result != JobResult::Success && fail_fast {
                    skipped(name, JobResult::Cancelled)
                } else {
                    self.job(&wf, &id, job, leg, event, run_id)?
                };
                if leg_report.result != JobResult::Success && result == JobResult::Success {
                    result = leg_report.result;
                }
                report.jobs.push(leg_report);
            }
            results.insert(id, result);
        }
        Ok(report)
    }

    fn job(
        &self,
        wf: &Y,
        id: &str,
        job: &Y,
        leg: Option<(String, String)>,
        event: &Event,
        run_id: u64,
    ) -> Result<JobReport, String> {
        for (key, _) in job.entries() {
            if !JOB_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "jobs.{id}: key `{key}` is not supported by the runner"
                ));
            }
        }
        let dirs = self.bench.job_dirs();
        let mut scope = JobScope {
            github: self.github_context(event, run_id, id, &dirs),
            event,
            vars: self.repo.vars.clone(),
            matrix: leg.clone().into_iter().collect(),
            env: None,
            steps: BTreeMap::new(),
            failed: false,
            token: BTreeMap::new(),
        };
        let environment = match job.get("environment") {
            None => None,
            Some(Y::Str(s)) => Some(yaml::substitute(s, &scope)?),
            Some(other) => Some(yaml::substitute(
                other.get("name").and_then(Y::str).ok_or(format!(
                    "jobs.{id}.environment: a name or a map with `name`"
                ))?,
                &scope,
            )?),
        };
        if let Some(vars) = environment
            .as_ref()
            .and_then(|e| self.repo.environments.get(e))
        {
            scope.vars.extend(vars.clone());
        }
        let mut env = self.base_env(event, run_id, id, &dirs);
        let permissions = job.get("permissions").or(wf.get("permissions"));
        for (k, v) in permissions.map(Y::entries).unwrap_or(&[]) {
            scope
                .token
                .insert(k.clone(), v.str().unwrap_or_default().to_owned());
        }
        let oidc = scope.token.get("id-token").map(String::as_str) == Some("write");
        if oidc {
            let answer = self.bench.oidc(
                "/_sandbox/github-actions/jobs",
                &json!({
                    "repository": self.repo.name,
                    "environment": environment,
                    "ref": event.git_ref,
                    "event_name": event.name,
                }),
            )?;
            for (var, key) in [
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "request_url"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request_token"),
            ] {
                let value = answer[key]
                    .as_str()
                    .ok_or(format!("no {key} in {answer}"))?;
                env.insert(var.into(), value.into());
            }
        }
        for block in [wf.get("env"), job.get("env")].into_iter().flatten() {
            for (k, v) in block.entries() {
                let text = v.str().ok_or(format!("env {k}: not a string"))?;
                env.insert(k.clone(), yaml::substitute(text, &scope)?);
            }
        }
        let mut report = JobReport {
            name: match &leg {
                Some((_, value)) => format!("{id} ({value})"),
                None => id.to_owned(),
            },
            environment,
            result: JobResult::Success,
            steps: Vec::new(),
            summary: String::new(),
            workspace: dirs.workspace.clone(),
        };
        for (index, step) in job
            .get("steps")
            .map(Y::items)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let step_report = self.step(
                id,
                index,
                step,
                &mut scope,
                &mut env,
                &dirs,
                &mut report,
                event,
                run_id,
            )?;
            if matches!(step_report.outcome, Outcome::Ran(code) if code != 0) {
                scope.failed = true;
            }
            if let Some(step_id) = &step_report.id {
                scope
                    .steps
                    .insert(step_id.clone(), step_report.outputs.clone());
            }
            report.steps.push(step_report);
        }
        if scope.failed {
            report.result = JobResult::Failure;
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        job_id: &str,
        index: usize,
        step: &Y,
        scope: &mut JobScope,
        env: &mut BTreeMap<String, String>,
        dirs: &JobDirs,
        report: &mut JobReport,
        event: &Event,
        run_id: u64,
    ) -> Result<StepReport, String> {
        let at = format!("jobs.{job_id}.steps[{index}]");
        for (key, _) in step.entries() {
            if !STEP_KEYS.contains(&key.as_str()) {
                return Err(format!("{at}: key `{key}` is not supported by the runner"));
            }
        }
        let text = |key: &str| step.get(key).and_then(Y::str).map(str::to_owned);
        let id = text("id");
        let run = text("run");
        let uses = text("uses");
        let name = text("name")
            .or_else(|| uses.clone())
            .or_else(|| {
                run.as_ref()
                    .map(|r| r.lines().next().unwrap_or("").to_owned())
            })
            .unwrap_or_default();
        let mut step_report = StepReport {
            name,
            id,
            outcome: Outcome::Skipped,
            stdout: String::new(),
            stderr: String::new(),
            outputs: BTreeMap::new(),
        };
        scope.env = Some(env.clone());
        let condition = text("if").unwrap_or_else(|| "success()".into());
        if !yaml::condition(&condition, scope).map_err(|e| format!("{at}.if: {e}"))? {
            return Ok(step_report);
        }
        let mut step_env = env.clone();
        if let Some(block) = step.get("env") {
            for (k, v) in block.entries() {
                let value = v.str().ok_or(format!("{at}.env.{k}: not a string"))?;
                step_env.insert(k.clone(), yaml::substitute(value, scope)?);
            }
        }
        let files = dirs.temp.join(format!("_runner_file_commands/{index}"));
        std::fs::create_dir_all(&files).unwrap();
        let (output, summary, env_file) = (
            files.join("output"),
            files.join("summary"),
            files.join("env"),
        );
        for f in [&output, &summary, &env_file] {
            std::fs::write(f, "").unwrap();
        }
        step_env.insert("GITHUB_OUTPUT".into(), output.display().to_string());
        step_env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
        step_env.insert("GITHUB_ENV".into(), env_file.display().to_string());
        let ran = match (&run, &uses) {
            (Some(script), None) => {
                let script = yaml::substitute(script, scope)?;
                self.bench.run_script(
                    &["bash", "--noprofile", "--norc", "-eo", "pipefail"],
                    &script,
                    &dirs.workspace,
                    &dirs.temp,
                    &step_env,
                )
            }
            (None, Some(action)) => {
                let mut with = BTreeMap::new();
                for (k, v) in step.get("with").map(Y::entries).unwrap_or(&[]) {
                    let value = v.str().ok_or(format!("{at}.with.{k}: not a string"))?;
                    with.insert(k.clone(), yaml::substitute(value, scope)?);
                }
                self.action(
                    action,
                    &with,
                    step_report.id.as_deref(),
                    &step_env,
                    dirs,
                    event,
                    run_id,
                    &scope.token,
                )
                .map_err(|e| format!("{at}: {e}"))?
            }
            _ => return Err(format!("{at}: a step has exactly one of `run` and `uses`")),
        };
        step_report.outputs = read_outputs(&output).map_err(|e| format!("{at}: {e}"))?;
        report
            .summary
            .push_str(&std::fs::read_to_string(&summary).unwrap_or_default());
        for (k, v) in read_outputs(&env_file).map_err(|e| format!("{at}: {e}"))? {
            env.insert(k, v);
        }
        step_report.outcome = Outcome::Ran(ran.code);
        step_report.stdout = ran.stdout;
        step_report.stderr = ran.stderr;
        Ok(step_report)
    }

    fn github_context(
        &self,
        event: &Event,
        run_id: u64,
        job: &str,
        dirs: &JobDirs,
    ) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("repository", self.repo.name.clone()),
            (
                "repository_owner",
                self.repo.name.split('/').next().unwrap_or("").to_owned(),
            ),
            ("sha", event.sha.clone()),
            ("ref", event.git_ref.clone()),
            ("event_name", event.name.clone()),
            ("run_id", run_id.to_string()),
            ("token", "ghs_runner-placeholder-token".into()),
            ("workspace", dirs.workspace.display().to_string()),
            ("server_url", "https://github.com".into()),
            ("job", job.to_owned()),
        ])
    }

    fn base_env(
        &self,
        event: &Event,
        run_id: u64,
        job: &str,
        dirs: &JobDirs,
    ) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("PATH", self.bench.path(&dirs.home)),
            ("HOME", dirs.home.display().to_string()),
            ("LANG", "C.UTF-8".into()),
            ("CI", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_TEMP", dirs.temp.display().to_string()),
            ("GITHUB_WORKSPACE", dirs.workspace.display().to_string()),
            ("GITHUB_REPOSITORY", self.repo.name.clone()),
            ("GITHUB_SHA", event.sha.clone()),
            ("GITHUB_REF", event.git_ref.clone()),
            ("GITHUB_EVENT_NAME", event.name.clone()),
            ("GITHUB_RUN_ID", run_id.to_string()),
            ("GITHUB_JOB", job.to_owned()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if event.pull_request.is_some() {
            env.insert("GITHUB_BASE_REF".into(), "main".into());
            env.insert("GITHUB_HEAD_REF".into(), "feature".into());
        }
        env
    }
}

fn skipped(name: String, result: JobResult) -> JobReport {
    JobReport {
        name,
        environment: None,
        result,
        steps: Vec::new(),
        summary: String::new(),
        workspace: Default::default(),
    }
}

fn needs(job: &Y) -> Vec<String> {
    match job.get("needs") {
        Some(Y::Str(s)) => vec![s.clone()],
        Some(Y::Seq(items)) => items.iter().filter_map(Y::str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// Jobs so that each comes after what it needs, else in file order.
fn order(jobs: &Y) -> Result<Vec<(String, &Y)>, String> {
    let mut left: Vec<(String, &Y)> = jobs.entries().iter().map(|(k, v)| (k.clone(), v)).collect();
    let mut out: Vec<(String, &Y)> = Vec::new();
    while !left.is_empty() {
        let at = left
            .iter()
            .position(|(_, job)| needs(job).iter().all(|n| out.iter().any(|(o, _)| o == n)))
            .ok_or("jobs need each other in a circle, or a job that does not exist")?;
        out.push(left.remove(at));
    }
    Ok(out)
}

/// The matrix legs: one key with a list of values, in order; `[None]` without a matrix.
fn legs(job: &Y) -> Result<Vec<Option<(String, String)>>, String> {
    let Some(matrix) = job.get("strategy").and_then(|s| s.get("matrix")) else {
        return Ok(vec![None]);
    };
    match matrix.entries() {
        [(key, Y::Seq(values))] => values
            .iter()
            .map(|v| {
                v.str()
                    .map(|s| Some((key.clone(), s.to_owned())))
                    .ok_or(format!("matrix.{key}: only plain values are supported"))
            })
            .collect(),
        _ => Err("the runner supports a matrix of one key with a list of values".into()),
    }
}
