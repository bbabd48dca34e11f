//! The example pipelines under examples/pipelines/ run, step by step, against the sandbox: a
//! local runner reads each workflow file, runs its shell steps in order with the variables the CI
//! would set (the OIDC request variables served by the sandbox) and maps each action to a small
//! local behaviour, failing on anything it does not know, so the examples cannot rot.
//!
//! The runner is tested on its own against tests/fixtures/pipelines/ (only commands every branch
//! has); the tests that run the real examples need `bootstrap`, saved plans, markdown output and
//! the sandbox's CI issuers.

mod actions;
mod ado;
mod bench;
mod github;
mod runner;
mod stubbed;
mod yaml;

use std::collections::BTreeMap;
use std::path::PathBuf;

use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Sandbox};
use serde_json::Value;

use bench::Bench;
use github::{Event, Github, JobResult, Outcome, Repo};

use crate::project::manifest_dir;
use crate::sandbox_support::default_sandbox;

const REPO: &str = "acme/llm-gateway";
const HEAD_SHA: &str = "feed000000000000000000000000000000000007";

fn example(relative: &str) -> PathBuf {
    manifest_dir().join("examples/pipelines").join(relative)
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures/pipelines").join(name)
}

/// `environments/local.yaml` renamed to `name` and pointed at the test sandbox, plus `extra`.
fn sandbox_env(name: &str, extra: &str) -> String {
    let local = std::fs::read_to_string(manifest_dir().join("environments/local.yaml")).unwrap();
    format!(
        "{}{extra}",
        local
            .replace("local", name)
            .replace("address: 127.0.0.1:7171", "address: {sandbox}")
    )
}

/// Live ARM ids (lower case) that carry `provision-env: env`.
fn arm_of(sandbox: &Sandbox, env: &str) -> Vec<String> {
    let state = sandbox.state();
    state
        .arm
        .resources
        .iter()
        .filter(|(_, r)| {
            r.body.get("tags").and_then(|t| t.get("provision-env")) == Some(&Value::from(env))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// dev's resource group, as the sandbox keys it.
fn dev_group() -> String {
    format!("/subscriptions/{DEFAULT_SUBSCRIPTION}/resourcegroups/rg-llm-gateway-dev")
}

/// Whether `env`'s API Management service stores the API's policy (a policy carries no tags of
/// its own: it is found under its service).
fn has_policy(sandbox: &Sandbox, env: &str) -> bool {
    let wanted = format!("/service/apim-llmgw-{env}/apis/llm/policies/policy");
    sandbox
        .state()
        .arm
        .resources
        .keys()
        .any(|id| id.to_ascii_lowercase().ends_with(&wanted))
}

/// The sandbox's writes (PUT, PATCH, DELETE) from request `from` on.
fn writes_since(sandbox: &Sandbox, from: usize) -> Vec<String> {
    sandbox.requests()[from..]
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn ran(code: i32) -> Outcome {
    Outcome::Ran(code)
}

fn steps(list: &[(&str, Outcome)]) -> Vec<(String, Outcome)> {
    list.iter()
        .map(|(n, o)| ((*n).to_owned(), o.clone()))
        .collect()
}

async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

// ---- the examples ---------------------------------------------------------------------------

fn github_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(example("github"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// Every example, checked without running: the runner understands it, every action is pinned,
/// and every job asks for an OIDC token and reads the repository, and no more than it needs.
#[test]
fn every_github_example_is_understood_pinned_and_least_privilege() {
    let files = github_examples();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["deploy.yml", "nightly.yml", "pull-request.yml"]);
    for file in files {
        let raw = std::fs::read_to_string(&file).unwrap();
        let wf = yaml::load(&file).unwrap();
        github::check(&raw, &wf).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(wf.get("permissions"), Some(&yaml::Y::Map(Vec::new())));
        assert!(!raw.contains("secrets."), "{}: no secret", file.display());
        // Values reach scripts through `env:`, never spliced into the script text (GitHub's
        // "script injection" advice in its security hardening guide).
        let mut strings = Vec::new();
        wf.walk("", &mut strings);
        for (path, text) in strings {
            assert!(
                !(path.ends_with(".run") && text.contains("${{")),
                "{}: {path} splices an expression into a script",
                file.display()
            );
        }
        for (id, job) in wf.get("jobs").unwrap().entries() {
            // A pinned image and a bound on a hung job, as for the actions.
            assert_eq!(
                job.get("runs-on").and_then(yaml::Y::str),
                Some("ubuntu-24.04"),
                "{id}"
            );
            assert!(job.get("timeout-minutes").is_some(), "{id}");
            let permissions = job.get("permissions").unwrap();
            assert_eq!(
                permissions.get("id-token").and_then(yaml::Y::str),
                Some("write"),
                "{id}"
            );
            assert_eq!(
                permissions.get("contents").and_then(yaml::Y::str),
                Some("read"),
                "{id}"
            );
            let writes: Vec<&str> = permissions
                .entries()
                .iter()
                .filter(|(k, v)| v.str() == Some("write") && k != "id-token")
                .map(|(k, _)| k.as_str())
                .collect();
            let expected: &[&str] = if file.ends_with("pull-request.yml") {
                &["pull-requests"]
            } else {
                &[]
            };
            assert_eq!(writes, expected, "{}: {id}", file.display());
        }
    }
}

/// The JSON line `bootstrap` prints: client id, tenant, subscription and subject.
fn bootstrap(bench: &Bench, args: &[&str]) -> Value {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin!("provision"))
        .args(["--color", "never", "--output", "json", "bootstrap"])
        .args(args)
        .current_dir(&bench.checkout)
        .env_remove("PROVISION_AUTH")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bootstrap {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.get("client_id").is_some())
        .unwrap_or_else(|| panic!("no client_id line in {stdout}"))
}

fn azure_vars(client: &Value) -> BTreeMap<String, String> {
    assert_eq!(client["tenant_id"], DEFAULT_TENANT);
    assert_eq!(client["subscription_id"], DEFAULT_SUBSCRIPTION);
    ["client_id", "tenant_id", "subscription_id"]
        .into_iter()
        .map(|k| {
            (
                format!("AZURE_{}", k.to_ascii_uppercase()),
                client[k].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The sandbox with `dev` (short-lived) and `prod` (protected), and a repository whose
/// pull-request identity is in its variables; with `environments`, also the GitHub
/// environments' own identities, as the examples' README sets them up.
async fn github_world(environments: bool) -> (Sandbox, std::sync::Arc<Bench>, Repo) {
    let sandbox = default_sandbox().await;
    let bench = Bench::new(
        &sandbox,
        &[
            ("dev", sandbox_env("dev", "lifetime: 8h\n")),
            ("prod", sandbox_env("prod", "protected: true\n")),
        ],
        &["dev", "prod"],
    );
    // Each environment has its own deployment app; it trusts pull requests, and with
    // `environments` also its GitHub environment's jobs. The repository variables hold one client
    // id per environment for the pull request, each GitHub environment its own AZURE_CLIENT_ID,
    // as the examples' README sets them up. Without `environments`, the GitHub environments
    // still name the app (its id was copied), but no credential trusts their subject.
    let mut repo = Repo {
        name: REPO.into(),
        vars: BTreeMap::new(),
        environments: BTreeMap::new(),
    };
    for env in ["dev", "prod"] {
        let pr = bootstrap(
            &bench,
            &["github", "--env", env, "--repo", REPO, "--pull-request"],
        );
        assert_eq!(pr["subject"], format!("repo:{REPO}:pull_request"));
        let mut values = azure_vars(&pr);
        let mut client = values.remove("AZURE_CLIENT_ID").unwrap();
        repo.vars.extend(values);
        let name = format!("AZURE_CLIENT_ID_{}", env.to_ascii_uppercase());
        repo.vars.insert(name, client.clone());
        if environments {
            let id = bootstrap(
                &bench,
                &["github", "--env", env, "--repo", REPO, "--environment", env],
            );
            assert_eq!(id["subject"], format!("repo:{REPO}:environment:{env}"));
            client = id["client_id"].as_str().unwrap().to_owned();
        }
        let vars = BTreeMap::from([("AZURE_CLIENT_ID".to_owned(), client)]);
        repo.environments.insert(env.to_owned(), vars);
    }
    (sandbox, std::sync::Arc::new(bench), repo)
}

fn run_example(
    bench: &std::sync::Arc<Bench>,
    repo: &Repo,
    file: &str,
    event: Event,
    run_id: u64,
    merged: Option<(u64, u64)>,
) -> impl FnOnce() -> github::RunReport + Send + 'static {
    let (bench, repo, file) = (bench.clone(), repo.clone(), example(file));
    move || {
        let gh = Github {
            bench: &bench,
            repo: &repo,
            merged,
        };
        gh.run(&file, &event, run_id)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    }
}

fn all_ran(job: &github::JobReport, names: &[&str]) {
    let expected: Vec<(&str, Outcome)> = names.iter().map(|n| (*n, ran(0))).collect();
    assert_eq!(job.outcomes(), steps(&expected), "{job:#?}");
}

const CHECKOUT: &str = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1";
const CACHE: &str = "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_examples_plan_comment_deploy_and_clean_up() {
    let (sandbox, bench, repo) = github_world(true).await;
    // Pull request: checks, plans with changes, one comment, the plans kept.
    let from = sandbox.requests().len();
    let pr = Event::pull_request(7, HEAD_SHA);
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr.clone(),
        101,
        None,
    ))
    .await;
    let plan = report.job("plan");
    assert_eq!(plan.result, JobResult::Success, "{plan:#?}");
    all_ran(
        plan,
        &[
            CHECKOUT,
            CACHE,
            "Install provision",
            "Validate every environment",
            "Sign in",
            "Committed policies match the templates",
            "Policy tests",
            "Plan",
            "Assemble the comment",
            "Comment on the pull request",
            "Keep the saved plans",
        ],
    );
    assert_eq!(plan.step("Plan").outputs["changed"], "dev prod");
    assert_eq!(
        writes_since(&sandbox, from),
        Vec::<String>::new(),
        "a pull request writes nothing"
    );
    let comment = bench.comments.lock().unwrap()[0].clone();
    let dev_md =
        std::fs::read_to_string(plan.workspace.join("provision-out/plans/dev.md")).unwrap();
    let prod_md =
        std::fs::read_to_string(plan.workspace.join("provision-out/plans/prod.md")).unwrap();
    assert!(!dev_md.is_empty() && !prod_md.is_empty());
    assert!(
        comment.starts_with(&format!(
            "<!-- provision-plan -->\n## provision plan for {HEAD_SHA}\n\n### `dev`\n\n{dev_md}\n### `prod`\n\n{prod_md}\n"
        )),
        "{comment}"
    );
    assert_eq!(
        plan.summary, comment,
        "the job summary holds the same report"
    );
    for env in ["dev", "prod"] {
        let saved: Value = serde_json::from_slice(
            &std::fs::read(
                bench
                    .artifacts
                    .join(format!("101/provision-plans/{env}.plan.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(saved["format"], "provision-plan/1", "{env}");
        assert!(
            !saved.to_string().contains("eyJ"),
            "{env}: a plan holds no token"
        );
    }
    // The same pull request planned again posts a byte-identical comment.
    off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        102,
        None,
    ))
    .await;
    {
        let comments = bench.comments.lock().unwrap();
        assert_eq!(comments.len(), 2);
        assert_eq!(comments[1], comments[0]);
    }
    // After the merge: the reviewed plans, dev then prod, each in its GitHub environment.
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        103,
        Some((101, 7)),
    ))
    .await;
    let deploy_steps = [
        CHECKOUT,
        CACHE,
        "Install provision",
        "Sign in",
        "Find the plan of the merged pull request",
        "Download the reviewed plans",
        "Apply the reviewed plan",
        "Nothing left to change",
    ];
    for env in ["dev", "prod"] {
        let job = report.job(&format!("apply ({env})"));
        assert_eq!(job.environment.as_deref(), Some(env));
        all_ran(job, &deploy_steps);
        assert!(
            job.step("Apply the reviewed plan")
                .stdout
                .starts_with(&format!("applying the plan of pull request #7 to {env}\n")),
            "{job:#?}"
        );
        assert!(has_policy(&sandbox, env), "{env} has its policy");
    }
    // The same plans once more: everything they read has changed, so nothing is written.
    let from = sandbox.requests().len();
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        104,
        Some((101, 7)),
    ))
    .await;
    assert_eq!(
        report.names(),
        [
            ("apply (dev)".to_owned(), JobResult::Failure),
            ("apply (prod)".to_owned(), JobResult::Cancelled)
        ]
    );
    let stale = report.job("apply (dev)").step("Apply the reviewed plan");
    assert_eq!(stale.outcome, ran(1));
    assert!(stale.stderr.contains("stale plan: "), "{}", stale.stderr);
    assert_eq!(writes_since(&sandbox, from), Vec::<String>::new());
    // Nightly: nothing has expired yet; eight hours on, dev (lifetime 8h) goes, prod stays.
    let nightly_steps = [
        CHECKOUT,
        CACHE,
        "Install provision",
        "Sign in",
        "Tear down expired environments",
    ];
    let (dev, prod) = (arm_of(&sandbox, "dev"), arm_of(&sandbox, "prod"));
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/nightly.yml",
        Event::schedule(),
        105,
        None,
    ))
    .await;
    all_ran(report.job("expired"), &nightly_steps);
    assert_eq!(
        (arm_of(&sandbox, "dev"), arm_of(&sandbox, "prod")),
        (dev, prod.clone())
    );
    sandbox
        .advance(provision::clock::SignedDuration::from_hours(9))
        .unwrap();
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/nightly.yml",
        Event::schedule(),
        106,
        None,
    ))
    .await;
    all_ran(report.job("expired"), &nightly_steps);
    // Only the resource group stays: it holds the pipeline identities' role assignments, which
    // are not the environment's, so `down` leaves it (and the next `up` can still deploy).
    assert_eq!(arm_of(&sandbox, "dev"), vec![dev_group()]);
    assert_eq!(arm_of(&sandbox, "prod"), prod);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_subject_has_no_federated_credential_is_refused_at_sign_in_with_the_fix() {
    // dev's app trusts pull requests only: the deploy job, in the GitHub environment `dev`,
    // presents `repo:acme/llm-gateway:environment:dev`, which no credential of that app trusts.
    let (sandbox, bench, repo) = github_world(false).await;
    let from = sandbox.requests().len();
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        201,
        Some((101, 7)),
    ))
    .await;
    assert_eq!(
        report.names(),
        [
            ("apply (dev)".to_owned(), JobResult::Failure),
            ("apply (prod)".to_owned(), JobResult::Cancelled)
        ]
    );
    let job = report.job("apply (dev)");
    assert_eq!(
        job.outcomes(),
        steps(&[
            (CHECKOUT, ran(0)),
            (CACHE, ran(0)),
            ("Install provision", ran(0)),
            ("Sign in", ran(1)),
            ("Find the plan of the merged pull request", Outcome::Skipped),
            ("Download the reviewed plans", Outcome::Skipped),
            ("Apply the reviewed plan", Outcome::Skipped),
            ("Nothing left to change", Outcome::Skipped),
        ])
    );
    let stderr = &job.step("Sign in").stderr;
    assert!(stderr.contains("AADSTS70021"), "{stderr}");
    assert!(
        stderr.contains(&format!("repo:{REPO}:environment:dev")),
        "{stderr}"
    );
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_default();
    assert!(
        hint.contains("provision bootstrap github") && hint.contains("--environment dev"),
        "{stderr}"
    );
    assert_eq!(writes_since(&sandbox, from), Vec::<String>::new());
    // The identity the hint names, and the same job signs in.
    let id = bootstrap(
        &bench,
        &[
            "github",
            "--env",
            "dev",
            "--repo",
            REPO,
            "--environment",
            "dev",
        ],
    );
    let mut repo = repo;
    repo.environments.insert(
        "dev".into(),
        BTreeMap::from([(
            "AZURE_CLIENT_ID".into(),
            id["client_id"].as_str().unwrap().to_owned(),
        )]),
    );
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        202,
        None,
    ))
    .await;
    let job = report.job("apply (dev)");
    assert_eq!(job.step("Sign in").outcome, ran(0), "{job:#?}");
    // No pull request merged this commit: no reviewed plan, nothing applied.
    assert_eq!(
        job.step("Find the plan of the merged pull request").outcome,
        ran(1)
    );
}

/// Every AzureCLI@2 step of the Azure DevOps example, as (stage, service connection, script).
fn azure_cli_steps(pipeline: &yaml::Y) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for stage in pipeline.get("stages").unwrap().items() {
        let name = stage
            .get("stage")
            .and_then(yaml::Y::str)
            .unwrap()
            .to_owned();
        ado::Condition::parse(
            stage
                .get("condition")
                .and_then(yaml::Y::str)
                .unwrap_or("succeeded()"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for job in stage.get("jobs").unwrap().items() {
            let steps = job.get("steps").or_else(|| {
                job.get("strategy")
                    .and_then(|s| s.get("runOnce"))
                    .and_then(|s| s.get("deploy"))
                    .and_then(|s| s.get("steps"))
            });
            for step in steps.unwrap().items() {
                if let Some(inputs) = step.get("inputs") {
                    let input = |k: &str| inputs.get(k).and_then(yaml::Y::str).unwrap().to_owned();
                    assert_eq!(input("addSpnToEnvironment"), "true", "{name}");
                    out.push((
                        name.clone(),
                        input("azureSubscription"),
                        input("inlineScript"),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn the_azure_devops_example_signs_in_with_workload_identity_only() {
    let file = example("azure-devops/azure-pipelines.yml");
    let pipeline = yaml::load(&file).unwrap();
    let steps = azure_cli_steps(&pipeline);
    let connections: Vec<(&str, &str)> = steps
        .iter()
        .map(|(stage, connection, _)| (stage.as_str(), connection.as_str()))
        .collect();
    assert_eq!(
        connections,
        [
            ("plan", "provision-dev"),
            ("plan", "provision-prod"),
            ("deploy_dev", "provision-dev"),
            ("deploy_prod", "provision-prod"),
            ("cleanup", "provision-dev"),
        ]
    );
    for (stage, _, script) in &steps {
        assert!(
            script.starts_with("set -euo pipefail\n"),
            "{stage}: the agent's bash has no -e"
        );
        assert!(script.contains("AZURE_FEDERATED_TOKEN_FILE"), "{stage}");
        assert!(script.contains("--auth workload-identity"), "{stage}");
    }
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(!raw.contains("AZURE_CLIENT_SECRET") && !raw.contains("${{"));
}

fn organization(bench: &Bench) -> ado::Organization {
    let mut org = ado::Organization {
        name: "acme".into(),
        project: "llm-gateway".into(),
        tenant_id: DEFAULT_TENANT.into(),
        connections: BTreeMap::new(),
    };
    for env in ["dev", "prod"] {
        let connection = format!("provision-{env}");
        let id = bootstrap(
            bench,
            &[
                "azure-devops",
                "--env",
                env,
                "--org",
                "acme",
                "--project",
                "llm-gateway",
                "--service-connection",
                &connection,
            ],
        );
        assert_eq!(id["subject"], format!("sc://acme/llm-gateway/{connection}"));
        azure_vars(&id);
        org.connections
            .insert(connection, id["client_id"].as_str().unwrap().to_owned());
    }
    org
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_devops_example_plans_deploys_after_approval_and_cleans_up() {
    let sandbox = default_sandbox().await;
    let bench = std::sync::Arc::new(Bench::new(
        &sandbox,
        &[
            ("dev", sandbox_env("dev", "lifetime: 8h\n")),
            ("prod", sandbox_env("prod", "protected: true\n")),
        ],
        &["dev", "prod"],
    ));
    let org = organization(&bench);
    let run = |trigger: ado::Trigger, build: u64| {
        let (bench, org) = (bench.clone(), org.clone());
        move || {
            let runner = ado::Ado {
                bench: &bench,
                org: &org,
            };
            runner
                .run(
                    &example("azure-devops/azure-pipelines.yml"),
                    &trigger,
                    build,
                )
                .unwrap()
        }
    };
    let stages = |list: [JobResult; 5]| -> Vec<(String, JobResult)> {
        ["checks", "plan", "deploy_dev", "deploy_prod", "cleanup"]
            .into_iter()
            .zip(list)
            .map(|(s, r)| (s.to_owned(), r))
            .collect()
    };
    use JobResult::{Skipped, Success};
    // A pull request: checks and plans, nothing written.
    let from = sandbox.requests().len();
    let pr = off_runtime(run(ado::Trigger::pull_request(7), 401)).await;
    assert_eq!(
        pr.results(),
        stages([Success, Success, Skipped, Skipped, Skipped]),
        "{pr:#?}"
    );
    assert_eq!(writes_since(&sandbox, from), Vec::<String>::new());
    for env in ["dev", "prod"] {
        let saved: Value = serde_json::from_slice(
            &std::fs::read(
                bench
                    .artifacts
                    .join(format!("401/plan-{env}/{env}.plan.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(saved["format"], "provision-plan/1");
    }
    // main: plan, then each environment's deployment job applies this run's plan.
    let main = off_runtime(run(ado::Trigger::main(), 402)).await;
    assert_eq!(
        main.results(),
        stages([Success, Success, Success, Success, Skipped]),
        "{main:#?}"
    );
    for env in ["dev", "prod"] {
        let job = main.job(&format!("deploy_{env}"), &format!("deploy_{env}"));
        assert_eq!(
            job.environment.as_deref(),
            Some(&*format!("provision-{env}"))
        );
        assert!(has_policy(&sandbox, env), "{env}");
    }
    // Nightly, after dev's lifetime: dev goes, prod stays.
    let prod = arm_of(&sandbox, "prod");
    sandbox
        .advance(provision::clock::SignedDuration::from_hours(9))
        .unwrap();
    let nightly = off_runtime(run(ado::Trigger::schedule(), 403)).await;
    assert_eq!(
        nightly.results(),
        stages([Skipped, Skipped, Skipped, Skipped, Success]),
        "{nightly:#?}"
    );
    assert_eq!(arm_of(&sandbox, "dev"), vec![dev_group()]);
    assert_eq!(arm_of(&sandbox, "prod"), prod);
    // A connection pointed at an app that does not trust it: sign-in refused, with the fix.
    let mut wrong = org.clone();
    wrong.connections.insert(
        "provision-prod".into(),
        org.connections["provision-dev"].clone(),
    );
    let b = bench.clone();
    let pr = off_runtime(move || {
        let runner = ado::Ado {
            bench: &b,
            org: &wrong,
        };
        runner
            .run(
                &example("azure-devops/azure-pipelines.yml"),
                &ado::Trigger::pull_request(8),
                404,
            )
            .unwrap()
    })
    .await;
    assert_eq!(pr.results()[1], ("plan".to_owned(), JobResult::Failure));
    let refused = pr.job("plan", "plan_prod").step("Plan prod");
    assert_eq!(refused.outcome, ran(1));
    assert!(refused.stderr.contains("AADSTS70021"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("--service-connection 'provision-prod'"),
        "{}",
        refused.stderr
    );
}
