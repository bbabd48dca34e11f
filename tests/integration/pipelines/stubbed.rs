//! The real example files, run with a stand-in `provision` that logs each call and answers as
//! told: the examples' own shell logic (exit 2 as "changes", the comment, the artifacts, which
//! identity each job signs in as, a stale plan stopping the deploy) is proven on every branch,
//! before the commands they call exist here. The runs against the real binary are in the parent
//! module.

use std::collections::BTreeMap;

use super::ado;
use super::bench::Bench;
use super::github::{Event, JobResult, Outcome, Repo};
use super::{
    CACHE, CHECKOUT, HEAD_SHA, REPO, all_ran, off_runtime, ran, run_example, sandbox_env, steps,
};
use crate::sandbox_support::default_sandbox;

/// A stubbed bench with `dev` and `prod`, and a repository whose variables name a pull-request
/// identity, overridden per GitHub environment.
async fn world() -> (provision::sandbox::Sandbox, std::sync::Arc<Bench>, Repo) {
    let sandbox = default_sandbox().await;
    let bench = Bench::stubbed(
        &sandbox,
        &[
            ("dev", sandbox_env("dev", "")),
            ("prod", sandbox_env("prod", "protected: true\n")),
        ],
        &["dev", "prod"],
    );
    let client = |id: &str| BTreeMap::from([("AZURE_CLIENT_ID".to_owned(), id.to_owned())]);
    // Each environment's app also trusts pull requests: one client id per environment.
    let mut vars = BTreeMap::from([
        ("AZURE_CLIENT_ID_DEV".to_owned(), "dev-client".to_owned()),
        ("AZURE_CLIENT_ID_PROD".to_owned(), "prod-client".to_owned()),
    ]);
    vars.insert("AZURE_TENANT_ID".into(), "tenant".into());
    vars.insert("AZURE_SUBSCRIPTION_ID".into(), "subscription".into());
    let repo = Repo {
        name: REPO.into(),
        vars,
        environments: BTreeMap::from([
            ("dev".to_owned(), client("dev-client")),
            ("prod".to_owned(), client("prod-client")),
        ]),
    };
    (sandbox, std::sync::Arc::new(bench), repo)
}

const PR_STEPS: [&str; 11] = [
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
];

fn signed(calls: &[&str], client: &str) -> Vec<String> {
    calls
        .iter()
        .map(|c| format!("{c} [auth=github-oidc client={client}]"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_request_example_plans_every_environment_and_posts_one_comment() {
    let (_sandbox, bench, repo) = world().await;
    bench.stub_answer("plan", "dev", 2, "");
    bench.stub_plan("dev", "3 to create\n");
    let pr = Event::pull_request(7, HEAD_SHA);
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        101,
        None,
    ))
    .await;
    let job = report.job("plan");
    all_ran(job, &PR_STEPS);
    // Exit 2 is "changes", not a failure.
    assert_eq!(job.step("Plan").stdout, "dev: changes\nprod: no changes\n");
    assert_eq!(job.step("Plan").outputs["changed"], "dev");
    // Commands that read Azure run as each environment's identity; the offline ones as none.
    let mut expected = signed(&["validate --all"], "");
    expected.extend(signed(&["whoami --env dev"], "dev-client"));
    expected.extend(signed(&["whoami --env prod"], "prod-client"));
    expected.extend(signed(
        &[
            "render --env dev --offline --out policies --check --output markdown",
            "render --env prod --offline --out policies --check --output markdown",
            "policy test --env dev --output markdown",
            "policy test --env prod --output markdown",
        ],
        "",
    ));
    expected.extend(signed(
        &["plan --env dev --out provision-out/plans/dev.plan.json --detailed-exitcode --output markdown"],
        "dev-client",
    ));
    expected.extend(signed(
        &["plan --env prod --out provision-out/plans/prod.plan.json --detailed-exitcode --output markdown"],
        "prod-client",
    ));
    assert_eq!(bench.calls(), expected);
    let comment = format!(
        "<!-- provision-plan -->\n## provision plan for {HEAD_SHA}\n\n\
         ### `dev`\n\n3 to create\n\n### `prod`\n\nplan of prod\n\n\
         render of dev: in sync\nrender of prod: in sync\n\n\
         policy test of dev: passed\npolicy test of prod: passed\n\n"
    );
    assert_eq!(
        *bench.comments.lock().unwrap(),
        std::slice::from_ref(&comment)
    );
    assert_eq!(job.summary, comment);
    let mut kept: Vec<String> = std::fs::read_dir(bench.artifacts.join("101/provision-plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["dev.md", "dev.plan.json", "prod.md", "prod.plan.json"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_plan_fails_the_job_keeps_no_plans_and_says_so_in_the_comment() {
    let (_sandbox, bench, repo) = world().await;
    bench.stub_answer("plan", "prod", 1, "error: the subscription was not found");
    let pr = Event::pull_request(7, HEAD_SHA);
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        101,
        None,
    ))
    .await;
    let job = report.job("plan");
    assert_eq!(job.result, JobResult::Failure);
    let mut expected: Vec<(&str, Outcome)> = PR_STEPS.iter().map(|s| (*s, ran(0))).collect();
    expected[7].1 = ran(1);
    expected[10].1 = Outcome::Skipped;
    assert_eq!(job.outcomes(), steps(&expected));
    assert_eq!(
        job.step("Plan").stdout,
        "dev: no changes\n::error title=plan prod::provision plan exited 1\n"
    );
    let comment = bench.comments.lock().unwrap()[0].clone();
    assert!(
        comment
            .contains("### `prod`\n\n**The plan of `prod` failed** (exit 1): see the job log.\n\n"),
        "{comment}"
    );
    assert!(!bench.artifacts.join("101").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_too_long_for_a_comment_points_to_the_summary() {
    let (_sandbox, bench, repo) = world().await;
    let long = format!("{}\n", "x".repeat(61_000));
    bench.stub_plan("dev", &long);
    let pr = Event::pull_request(7, HEAD_SHA);
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        101,
        None,
    ))
    .await;
    let job = report.job("plan");
    all_ran(job, &PR_STEPS);
    assert_eq!(
        *bench.comments.lock().unwrap(),
        [format!(
            "<!-- provision-plan -->\n## provision plan for {HEAD_SHA}\n\n\
             The plan is too long for a comment: read it in the run's summary.\n"
        )]
    );
    assert!(job.summary.contains(&long));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_example_applies_the_merged_plans_as_each_environment_and_stops_when_stale() {
    let (_sandbox, bench, repo) = world().await;
    let pr = Event::pull_request(7, HEAD_SHA);
    off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        101,
        None,
    ))
    .await;
    let before = bench.calls().len();
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        102,
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
    let mut expected = Vec::new();
    for env in ["dev", "prod"] {
        let job = report.job(&format!("apply ({env})"));
        assert_eq!(job.environment.as_deref(), Some(env));
        all_ran(job, &deploy_steps);
        assert_eq!(
            job.step("Apply the reviewed plan").stdout,
            format!("applying the plan of pull request #7 to {env}\nup done\n")
        );
        expected.extend(signed(
            &[
                &format!("whoami --env {env}"),
                &format!("up --plan provision-out/plans/{env}.plan.json --env {env}"),
                &format!("plan --env {env} --detailed-exitcode"),
            ],
            &format!("{env}-client"),
        ));
    }
    assert_eq!(bench.calls()[before..], expected);
    // A plan that went stale: the job fails with the reason, prod is cancelled.
    bench.stub_answer(
        "up",
        "dev",
        1,
        "error: stale plan: apim api policy llm changed (ETag \"7\")",
    );
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        103,
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
    assert_eq!(job.step("Apply the reviewed plan").outcome, ran(1));
    assert_eq!(
        job.step("Apply the reviewed plan").stderr,
        "error: stale plan: apim api policy llm changed (ETag \"7\")\n"
    );
    assert_eq!(job.step("Nothing left to change").outcome, Outcome::Skipped);
    // A push that came through no pull request has no plan: nothing is applied.
    let before = bench.calls().len();
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/deploy.yml",
        Event::push_main(),
        104,
        None,
    ))
    .await;
    let job = report.job("apply (dev)");
    assert_eq!(
        job.step("Find the plan of the merged pull request").outcome,
        ran(1)
    );
    assert_eq!(
        job.step("Apply the reviewed plan").outcome,
        Outcome::Skipped
    );
    assert_eq!(
        bench.calls()[before..],
        signed(&["whoami --env dev"], "dev-client")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_example_tears_down_what_expired_as_dev() {
    let (_sandbox, bench, repo) = world().await;
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/nightly.yml",
        Event::schedule(),
        105,
        None,
    ))
    .await;
    let job = report.job("expired");
    assert_eq!(job.environment.as_deref(), Some("dev"));
    all_ran(
        job,
        &[
            CHECKOUT,
            CACHE,
            "Install provision",
            "Sign in",
            "Tear down expired environments",
        ],
    );
    assert_eq!(
        bench.calls(),
        signed(
            &["whoami --env dev", "down --expired --env dev --yes"],
            "dev-client"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_devops_example_plans_on_a_pull_request_and_deploys_this_runs_plans_on_main() {
    let (_sandbox, bench, _) = world().await;
    let org = ado::Organization {
        name: "acme".into(),
        project: "llm-gateway".into(),
        tenant_id: "tenant".into(),
        connections: BTreeMap::from([
            ("provision-dev".to_owned(), "dev-client".to_owned()),
            ("provision-prod".to_owned(), "prod-client".to_owned()),
        ]),
    };
    bench.stub_answer("plan", "dev", 2, "");
    let run = |trigger: ado::Trigger, build: u64| {
        let (bench, org) = (bench.clone(), org.clone());
        move || {
            let runner = ado::Ado {
                bench: &bench,
                org: &org,
            };
            runner
                .run(
                    &super::example("azure-devops/azure-pipelines.yml"),
                    &trigger,
                    build,
                )
                .unwrap()
        }
    };
    let tmp = bench.dir.path().display().to_string();
    let calls = |from: usize| -> Vec<String> {
        bench.calls()[from..]
            .iter()
            .map(|c| c.replace(&tmp, "<tmp>"))
            .collect()
    };
    let stages = |list: [JobResult; 5]| -> Vec<(String, JobResult)> {
        ["checks", "plan", "deploy_dev", "deploy_prod", "cleanup"]
            .into_iter()
            .zip(list)
            .map(|(s, r)| (s.to_owned(), r))
            .collect()
    };
    use JobResult::{Skipped, Success};
    let pr = off_runtime(run(ado::Trigger::pull_request(7), 401)).await;
    assert_eq!(
        pr.results(),
        stages([Success, Success, Skipped, Skipped, Skipped]),
        "{pr:#?}"
    );
    let identity = |client: &str| format!("[auth= client={client} token=stub-oidc-token]");
    assert_eq!(
        calls(0),
        [
            "validate --all [auth= client=]".to_owned(),
            "render --env dev --offline --out policies --check --output markdown [auth= client=]"
                .into(),
            "policy test --env dev --output markdown [auth= client=]".into(),
            "render --env prod --offline --out policies --check --output markdown [auth= client=]"
                .into(),
            "policy test --env prod --output markdown [auth= client=]".into(),
            format!(
                "plan --env dev --auth workload-identity --out <tmp>/job-2/workspace/a/plans/dev.plan.json --detailed-exitcode --output markdown {}",
                identity("dev-client")
            ),
            format!(
                "plan --env prod --auth workload-identity --out <tmp>/job-3/workspace/a/plans/prod.plan.json --detailed-exitcode --output markdown {}",
                identity("prod-client")
            ),
        ]
    );
    // The approvers read each plan in the run's summary.
    assert_eq!(pr.job("plan", "plan_dev").summary, "plan of dev\n");
    assert_eq!(pr.job("plan", "plan_prod").summary, "plan of prod\n");
    assert!(bench.artifacts.join("401/plan-dev/dev.plan.json").is_file());
    assert!(
        bench
            .artifacts
            .join("401/plan-prod/prod.plan.json")
            .is_file()
    );
    // On main the plans made in this run are applied, and then nothing is left to change.
    bench.stub_answer("plan", "dev", 0, "");
    let from = bench.calls().len();
    let main = off_runtime(run(ado::Trigger::main(), 402)).await;
    assert_eq!(
        main.results(),
        stages([Success, Success, Success, Success, Skipped]),
        "{main:#?}"
    );
    let deployed: Vec<String> = calls(from)
        .into_iter()
        .filter(|c| c.starts_with("up ") || c.starts_with("plan --auth"))
        .collect();
    assert_eq!(
        deployed,
        [
            format!(
                "up --auth workload-identity --env dev --plan <tmp>/job-7/workspace/plan-dev/dev.plan.json {}",
                identity("dev-client")
            ),
            format!(
                "plan --auth workload-identity --env dev --detailed-exitcode {}",
                identity("dev-client")
            ),
            format!(
                "up --auth workload-identity --env prod --plan <tmp>/job-8/workspace/plan-prod/prod.plan.json {}",
                identity("prod-client")
            ),
            format!(
                "plan --auth workload-identity --env prod --detailed-exitcode {}",
                identity("prod-client")
            ),
        ]
    );
    let from = bench.calls().len();
    let nightly = off_runtime(run(ado::Trigger::schedule(), 403)).await;
    assert_eq!(
        nightly.results(),
        stages([Skipped, Skipped, Skipped, Skipped, Success])
    );
    assert_eq!(
        calls(from),
        [format!(
            "down --auth workload-identity --expired --env dev --yes {}",
            identity("dev-client")
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_id_variable_stops_the_pull_request_at_sign_in_naming_it() {
    let (_sandbox, bench, mut repo) = world().await;
    repo.vars.remove("AZURE_CLIENT_ID_PROD");
    let pr = Event::pull_request(7, HEAD_SHA);
    let report = off_runtime(run_example(
        &bench,
        &repo,
        "github/pull-request.yml",
        pr,
        101,
        None,
    ))
    .await;
    let sign_in = report.job("plan").step("Sign in");
    assert_eq!(sign_in.outcome, ran(1));
    assert_eq!(
        sign_in.stdout,
        format!(
            "whoami done\n::error::set the repository variable AZURE_CLIENT_ID_PROD to the client id that \
             provision bootstrap github --env prod --repo {REPO} --pull-request prints\n"
        )
    );
    assert_eq!(
        bench.calls()[..2],
        signed(&["validate --all"], "")
            .into_iter()
            .chain(signed(&["whoami --env dev"], "dev-client"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pull_requests_write_the_comment_is_refused_as_github_would() {
    let (_sandbox, bench, repo) = world().await;
    let text = std::fs::read_to_string(super::example("github/pull-request.yml")).unwrap();
    let line = "      pull-requests: write  # the plan comment\n";
    assert!(text.contains(line));
    let file = bench.dir.path().join("pull-request.yml");
    std::fs::write(&file, text.replace(line, "")).unwrap();
    let (b, r) = (bench.clone(), repo.clone());
    let report = off_runtime(move || {
        let gh = super::github::Github {
            bench: &b,
            repo: &r,
            merged: None,
        };
        gh.run(&file, &Event::pull_request(7, HEAD_SHA), 101)
            .unwrap()
    })
    .await;
    let comment = report.job("plan").step("Comment on the pull request");
    assert_eq!(comment.outcome, ran(1));
    assert_eq!(
        comment.stderr,
        "Resource not accessible by integration (the job's permissions lack `pull-requests: write`)"
    );
    assert!(bench.comments.lock().unwrap().is_empty());
}
