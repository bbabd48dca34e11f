//! An Azure Pipelines runner for the example `azure-pipelines.yml`: stages in order with their
//! `dependsOn` and `condition:` (the functions the example uses), jobs and deployment jobs
//! (`strategy.runOnce.deploy`), and the steps `checkout`, `script`/`bash`, `publish`/`download`
//! (this run's artifacts) and `AzureCLI@2` with `addSpnToEnvironment`, whose `$idToken` comes from
//! the sandbox's Azure DevOps issuer for the step's service connection. Scripts run as the agent
//! starts them, `bash --noprofile --norc FILE` without `-e` (an agent's log shows
//! `[command]… bash --noprofile --norc …/_temp/<id>.sh`), so the example's scripts set `-e`
//! themselves. Predefined variables follow "Use predefined variables" (learn.microsoft.com/
//! azure/devops/pipelines/build/variables): `Build.Reason`, `Build.SourceBranch`,
//! `Build.ArtifactStagingDirectory`, `Pipeline.Workspace`, `Agent.TempDirectory`, … each also as
//! an environment variable, upper case with `_` for `.`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::bench::{Bench, JobDirs, copy_tree};
use super::github::{JobReport, JobResult, Outcome, StepReport};
use super::yaml::{self, Y};

/// Why the run started, as `Build.Reason` says it.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub reason: &'static str,
    pub source_branch: String,
    pub pull_request: Option<u64>,
}

impl Trigger {
    pub fn pull_request(id: u64) -> Trigger {
        Trigger {
            reason: "PullRequest",
            source_branch: format!("refs/pull/{id}/merge"),
            pull_request: Some(id),
        }
    }

    pub fn main() -> Trigger {
        Trigger {
            reason: "IndividualCI",
            source_branch: "refs/heads/main".into(),
            pull_request: None,
        }
    }

    pub fn schedule() -> Trigger {
        Trigger {
            reason: "Schedule",
            ..Trigger::main()
        }
    }
}

#[derive(Debug)]
pub struct StageReport {
    pub name: String,
    pub result: JobResult,
    pub jobs: Vec<JobReport>,
}

#[derive(Debug)]
pub struct AdoReport {
    pub stages: Vec<StageReport>,
}

impl AdoReport {
    pub fn results(&self) -> Vec<(String, JobResult)> {
        self.stages
            .iter()
            .map(|s| (s.name.clone(), s.result))
            .collect()
    }

    pub fn job(&self, stage: &str, job: &str) -> &JobReport {
        self.stages
            .iter()
            .find(|s| s.name == stage)
            .and_then(|s| s.jobs.iter().find(|j| j.name == job))
            .unwrap_or_else(|| panic!("no job {stage}.{job} in {self:#?}"))
    }
}

/// The organisation's settings a run reads: its name, project, tenant, and the client id behind
/// each workload-identity service connection.
#[derive(Debug, Clone, Default)]
pub struct Organization {
    pub name: String,
    pub project: String,
    pub tenant_id: String,
    pub connections: BTreeMap<String, String>,
}

pub struct Ado<'a> {
    pub bench: &'a Bench,
    pub org: &'a Organization,
}

const TOP_KEYS: [&str; 6] = ["trigger", "pr", "schedules", "variables", "pool", "stages"];
const STEP_KEYS: [&str; 10] = [
    "checkout",
    "script",
    "bash",
    "task",
    "displayName",
    "env",
    "inputs",
    "publish",
    "download",
    "artifact",
];

impl Ado<'_> {
    pub fn run(&self, file: &Path, trigger: &Trigger, build_id: u64) -> Result<AdoReport, String> {
        let pipeline = yaml::load(file)?;
        for (key, _) in pipeline.entries() {
            if !TOP_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "pipeline key `{key}` is not supported by the runner"
                ));
            }
        }
        if std::fs::read_to_string(file)
            .unwrap_or_default()
            .contains("${{")
        {
            return Err("template expressions `${{ }}` are not supported by the runner".into());
        }
        let mut variables = BTreeMap::new();
        for (k, v) in pipeline.get("variables").map(Y::entries).unwrap_or(&[]) {
            let value = v.str().ok_or(format!("variables.{k}: a plain value"))?;
            variables.insert(k.clone(), value.to_owned());
        }
        variables.insert("Build.Reason".into(), trigger.reason.into());
        variables.insert("Build.SourceBranch".into(), trigger.source_branch.clone());
        variables.insert("Build.BuildId".into(), build_id.to_string());
        variables.insert("Build.Repository.Name".into(), "llm-gateway".into());
        variables.insert("System.TeamProject".into(), self.org.project.clone());
        variables.insert("TF_BUILD".into(), "True".into());
        if let Some(id) = trigger.pull_request {
            variables.insert("System.PullRequest.PullRequestId".into(), id.to_string());
        }
        let stages = pipeline.get("stages").map(Y::items).unwrap_or(&[]);
        let mut report = AdoReport { stages: Vec::new() };
        let mut previous: Option<String> = None;
        for stage in stages {
            let name = stage
                .get("stage")
                .and_then(Y::str)
                .ok_or("a stage without `stage:`")?
                .to_owned();
            let depends: Vec<String> = match stage.get("dependsOn") {
                None => previous.iter().cloned().collect(),
                Some(Y::Str(s)) if s.is_empty() => Vec::new(),
                Some(Y::Str(s)) => vec![s.clone()],
                Some(other) => other
                    .items()
                    .iter()
                    .filter_map(Y::str)
                    .map(str::to_owned)
                    .collect(),
            };
            let results: Vec<JobResult> = depends
                .iter()
                .map(|d| {
                    report
                        .stages
                        .iter()
                        .find(|s| &s.name == d)
                        .map(|s| s.result)
                        .ok_or(format!("stage {name} depends on unknown stage {d}"))
                })
                .collect::<Result<_, _>>()?;
            let condition = stage
                .get("condition")
                .and_then(Y::str)
                .unwrap_or("succeeded()");
            let run = Condition::parse(condition)?
                .eval(&variables, &results)?
                .truthy();
            let mut stage_report = StageReport {
                name: name.clone(),
                result: JobResult::Skipped,
                jobs: Vec::new(),
            };
            if run {
                stage_report.result = JobResult::Success;
                for job in stage.get("jobs").map(Y::items).unwrap_or(&[]) {
                    let job_report = self.job(job, &variables, build_id)?;
                    if job_report.result != JobResult::Success {
                        stage_report.result = JobResult::Failure;
                    }
                    stage_report.jobs.push(job_report);
                }
            }
            report.stages.push(stage_report);
            previous = Some(name);
        }
        Ok(report)
    }

    fn job(
        &self,
        job: &Y,
        variables: &BTreeMap<String, String>,
        build_id: u64,
    ) -> Result<JobReport, String> {
        let (name, steps) = if let Some(name) = job.get("job").and_then(Y::str) {
            (name, job.get("steps"))
        } else if let Some(name) = job.get("deployment").and_then(Y::str) {
            let steps = job
                .get("strategy")
                .and_then(|s| s.get("runOnce"))
                .and_then(|s| s.get("deploy"))
                .and_then(|s| s.get("steps"));
            (name, steps)
        } else {
            return Err("a job is `job:` or `deployment:`".into());
        };
        let dirs = self.bench.job_dirs();
        let mut vars = variables.clone();
        let ws = &dirs.workspace;
        for (var, dir) in [
            ("Pipeline.Workspace", ws.clone()),
            ("Build.SourcesDirectory", ws.join("s")),
            ("System.DefaultWorkingDirectory", ws.join("s")),
            ("Build.ArtifactStagingDirectory", ws.join("a")),
            ("Agent.TempDirectory", dirs.temp.clone()),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            vars.insert(var.into(), dir.display().to_string());
        }
        let mut env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase().replace('.', "_"), v.clone()))
            .collect();
        env.insert("PATH".into(), self.bench.path(&dirs.home));
        env.insert("HOME".into(), dirs.home.display().to_string());
        env.insert("LANG".into(), "C.UTF-8".into());
        let mut report = JobReport {
            name: name.to_owned(),
            environment: job.get("environment").and_then(Y::str).map(str::to_owned),
            result: JobResult::Success,
            steps: Vec::new(),
            summary: String::new(),
            workspace: ws.join("s"),
        };
        let mut failed = false;
        for (index, step) in steps.map(Y::items).unwrap_or(&[]).iter().enumerate() {
            let at = format!("{name}.steps[{index}]");
            for (key, _) in step.entries() {
                if !STEP_KEYS.contains(&key.as_str()) {
                    return Err(format!("{at}: key `{key}` is not supported by the runner"));
                }
            }
            let step_report = self.step(&at, step, &vars, &env, &dirs, build_id, failed)?;
            if matches!(step_report.outcome, Outcome::Ran(code) if code != 0) {
                failed = true;
            }
            // The logging command that attaches a markdown file to the run's summary page.
            for line in step_report.stdout.lines() {
                if let Some(file) = line.strip_prefix("##vso[task.uploadsummary]") {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| format!("{at}: uploadsummary {file}: {e}"))?;
                    report.summary.push_str(&text);
                }
            }
            report.steps.push(step_report);
        }
        if failed {
            report.result = JobResult::Failure;
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        at: &str,
        step: &Y,
        vars: &BTreeMap<String, String>,
        env: &BTreeMap<String, String>,
        dirs: &JobDirs,
        build_id: u64,
        failed: bool,
    ) -> Result<StepReport, String> {
        let text = |key: &str| step.get(key).and_then(Y::str).map(str::to_owned);
        let kind = ["checkout", "script", "bash", "task", "publish", "download"]
            .into_iter()
            .find(|k| step.get(k).is_some())
            .ok_or(format!("{at}: no step kind"))?;
        let mut report = StepReport {
            name: text("displayName")
                .unwrap_or_else(|| format!("{kind}: {}", text(kind).unwrap_or_default())),
            id: None,
            outcome: Outcome::Skipped,
            stdout: String::new(),
            stderr: String::new(),
            outputs: BTreeMap::new(),
        };
        if failed {
            return Ok(report);
        }
        let mut step_env = env.clone();
        for (k, v) in step.get("env").map(Y::entries).unwrap_or(&[]) {
            step_env.insert(k.clone(), macros(v.str().unwrap_or_default(), vars, true)?);
        }
        let sources = dirs.workspace.join("s");
        let shell = ["bash", "--noprofile", "--norc"];
        let ran = match kind {
            "checkout" => {
                match text("checkout").as_deref() {
                    Some("self") => copy_tree(&self.bench.checkout, &sources),
                    Some("none") => {}
                    other => return Err(format!("{at}: checkout {other:?}")),
                }
                (0, String::new())
            }
            "script" | "bash" => {
                let script = macros(&text(kind).unwrap_or_default(), vars, false)?;
                let ran = self
                    .bench
                    .run_script(&shell, &script, &sources, &dirs.temp, &step_env);
                report.stdout = ran.stdout;
                report.stderr = ran.stderr;
                (ran.code, String::new())
            }
            "publish" => {
                let path = macros(&text("publish").unwrap_or_default(), vars, true)?;
                let name = text("artifact").ok_or(format!("{at}: publish without artifact"))?;
                let to = self.bench.artifacts.join(format!("{build_id}/{name}"));
                if to.exists() || !Path::new(&path).is_dir() {
                    (1, format!("cannot publish {path} as {name}"))
                } else {
                    copy_tree(Path::new(&path), &to);
                    (0, String::new())
                }
            }
            "download" => {
                if text("download").as_deref() != Some("current") {
                    return Err(format!("{at}: only `download: current` is supported"));
                }
                let name = text("artifact").ok_or(format!("{at}: download without artifact"))?;
                let from = self.bench.artifacts.join(format!("{build_id}/{name}"));
                if from.is_dir() {
                    copy_tree(&from, &dirs.workspace.join(&name));
                    (0, String::new())
                } else {
                    (
                        1,
                        format!("Artifact {name} was not found for build {build_id}."),
                    )
                }
            }
            _ => {
                let ran = self.azure_cli(at, step, vars, step_env, dirs)?;
                report.stdout = ran.stdout;
                report.stderr = ran.stderr;
                (ran.code, String::new())
            }
        };
        if !ran.1.is_empty() {
            report.stderr = ran.1;
        }
        report.outcome = Outcome::Ran(ran.0);
        Ok(report)
    }

    /// AzureCLI@2, inline bash, with the service connection's federated token in `$idToken`.
    fn azure_cli(
        &self,
        at: &str,
        step: &Y,
        vars: &BTreeMap<String, String>,
        mut env: BTreeMap<String, String>,
        dirs: &JobDirs,
    ) -> Result<super::bench::Ran, String> {
        if step.get("task").and_then(Y::str) != Some("AzureCLI@2") {
            return Err(format!("{at}: the runner knows the task AzureCLI@2 only"));
        }
        let inputs = step.get("inputs").ok_or(format!("{at}: no inputs"))?;
        let input = |k: &str| {
            inputs
                .get(k)
                .and_then(Y::str)
                .unwrap_or_default()
                .to_owned()
        };
        for (k, v) in [("scriptType", "bash"), ("scriptLocation", "inlineScript")] {
            if input(k) != v {
                return Err(format!("{at}: inputs.{k} must be {v}"));
            }
        }
        let connection = input("azureSubscription");
        let client_id = self.org.connections.get(&connection).ok_or(format!(
            "{at}: service connection {connection} could not be found"
        ))?;
        if input("addSpnToEnvironment") == "true" {
            let answer = self.bench.oidc(
                "/_sandbox/azure-devops/oidc-token",
                &json!({
                    "organization": self.org.name,
                    "project": self.org.project,
                    "service_connection": connection,
                }),
            )?;
            let token = answer["token"]
                .as_str()
                .ok_or(format!("no token in {answer}"))?;
            env.insert("idToken".into(), token.into());
            env.insert("servicePrincipalId".into(), client_id.clone());
            env.insert("tenantId".into(), self.org.tenant_id.clone());
        }
        let script = macros(&input("inlineScript"), vars, false)?;
        Ok(self.bench.run_script(
            &["bash", "--noprofile", "--norc"],
            &script,
            &dirs.workspace.join("s"),
            &dirs.temp,
            &env,
        ))
    }
}

/// `$(Name)` macros: replaced where `Name` is a variable (case-insensitive); elsewhere left for
/// bash (`$(date)`), as the agent does. `strict` refuses an unknown one (outside scripts).
fn macros(text: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some((_, value)) => out.push_str(value),
            None if strict => {
                return Err(format!("`$({name})` is not a variable the runner knows"));
            }
            None => out.push_str(&rest[start..start + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A stage condition: `and`, `or`, `not`, `eq`, `ne`, `in`, `succeeded()`, `failed()`,
/// `always()`, `variables['Name']` and '…' literals (string comparison ignores case, as Azure
/// Pipelines' does).
#[derive(Debug)]
pub enum Condition {
    Call(String, Vec<Condition>),
    Variable(String),
    Lit(String),
}

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, String> {
        let mut at = 0;
        let c = Self::expr(text.trim().as_bytes(), &mut at, text)?;
        if at != text.trim().len() {
            return Err(format!("`{text}`: unexpected text at {at}"));
        }
        Ok(c)
    }

    fn skip(b: &[u8], at: &mut usize) {
        while *at < b.len() && b[*at].is_ascii_whitespace() {
            *at += 1;
        }
    }

    fn expr(b: &[u8], at: &mut usize, text: &str) -> Result<Condition, String> {
        Self::skip(b, at);
        if b.get(*at) == Some(&b'\'') {
            let start = *at + 1;
            let end = text.trim()[start..]
                .find('\'')
                .ok_or(format!("`{text}`: open string"))?
                + start;
            *at = end + 1;
            return Ok(Condition::Lit(text.trim()[start..end].to_owned()));
        }
        let start = *at;
        while *at < b.len() && (b[*at].is_ascii_alphanumeric() || b[*at] == b'.') {
            *at += 1;
        }
        let word = &text.trim()[start..*at];
        if word == "variables" && b.get(*at) == Some(&b'[') {
            *at += 1;
            let Condition::Lit(name) = Self::expr(b, at, text)? else {
                return Err(format!("`{text}`: variables['…'] takes a name"));
            };
            if b.get(*at) != Some(&b']') {
                return Err(format!("`{text}`: `]` missing"));
            }
            *at += 1;
            return Ok(Condition::Variable(name));
        }
        if ![
            "and",
            "or",
            "not",
            "eq",
            "ne",
            "in",
            "succeeded",
            "failed",
            "always",
        ]
        .contains(&word)
        {
            return Err(format!("`{text}`: `{word}` is not supported by the runner"));
        }
        if b.get(*at) != Some(&b'(') {
            return Err(format!("`{text}`: `(` after {word}"));
        }
        *at += 1;
        let mut args = Vec::new();
        loop {
            Self::skip(b, at);
            if b.get(*at) == Some(&b')') {
                *at += 1;
                break;
            }
            args.push(Self::expr(b, at, text)?);
            Self::skip(b, at);
            match b.get(*at) {
                Some(b',') => *at += 1,
                Some(b')') => {}
                _ => return Err(format!("`{text}`: `,` or `)` expected")),
            }
        }
        Ok(Condition::Call(word.to_owned(), args))
    }

    /// `dependencies`: the results of the stages this one depends on.
    pub fn eval(
        &self,
        vars: &BTreeMap<String, String>,
        dependencies: &[JobResult],
    ) -> Result<yaml::Value, String> {
        use yaml::Value::{Bool, Str};
        Ok(match self {
            Condition::Lit(s) => Str(s.clone()),
            Condition::Variable(name) => Str(vars.get(name).cloned().unwrap_or_default()),
            Condition::Call(f, args) => {
                let values = args
                    .iter()
                    .map(|a| a.eval(vars, dependencies))
                    .collect::<Result<Vec<_>, _>>()?;
                let text = |i: usize| values.get(i).map(yaml::Value::text).unwrap_or_default();
                Bool(match f.as_str() {
                    "and" => values.iter().all(yaml::Value::truthy),
                    "or" => values.iter().any(yaml::Value::truthy),
                    "not" => !values.first().is_some_and(yaml::Value::truthy),
                    "eq" => text(0).eq_ignore_ascii_case(&text(1)),
                    "ne" => !text(0).eq_ignore_ascii_case(&text(1)),
                    "in" => (1..values.len()).any(|i| text(0).eq_ignore_ascii_case(&text(i))),
                    "succeeded" => dependencies.iter().all(|r| *r == JobResult::Success),
                    "failed" => dependencies.contains(&JobResult::Failure),
                    _ => true,
                })
            }
        })
    }
}
