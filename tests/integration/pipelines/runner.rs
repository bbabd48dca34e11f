//! The runner on its own: the expression language, what it refuses, and fixture workflows
//! (tests/fixtures/pipelines/) run against the sandbox with commands every branch has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ado;
use super::bench::Bench;
use super::github::{self, Event, Github, JobResult, Outcome, Repo};
use super::yaml;
use super::{HEAD_SHA, REPO, arm_of, fixture, off_runtime, ran, sandbox_env, steps, writes_since};
use crate::sandbox_support::default_sandbox;

// ---- the expression language -----------------------------------------------------------------

struct Fixed(BTreeMap<&'static str, &'static str>, bool);

impl yaml::Scope for Fixed {
    fn lookup(&self, path: &[&str]) -> Result<String, String> {
        let key = path.join(".");
        Ok(self
            .0
            .get(key.as_str())
            .copied()
            .unwrap_or_default()
            .to_owned())
    }
    fn failed(&self) -> bool {
        self.1
    }
}

#[test]
fn expressions_substitute_the_supported_contexts_and_refuse_the_rest() {
    let scope = Fixed(
        BTreeMap::from([
            ("vars.ID", "c1"),
            ("steps.cache.outputs.cache-hit", "false"),
        ]),
        false,
    );
    assert_eq!(
        yaml::substitute("id=${{ vars.ID }}, none=${{ vars.NONE }}!", &scope).unwrap(),
        "id=c1, none=!"
    );
    assert!(yaml::condition("steps.cache.outputs.cache-hit != 'true'", &scope).unwrap());
    // String comparison ignores case, as GitHub's does.
    assert!(yaml::condition("${{ vars.ID == 'C1' }}", &scope).unwrap());
    assert!(!yaml::condition("vars.NONE", &scope).unwrap());
    assert_eq!(
        yaml::parse_expr("hashFiles('x')").unwrap_err(),
        "the function `hashFiles` is not supported"
    );
    assert_eq!(
        yaml::parse_expr("fromJSON()").unwrap_err(),
        "the function `fromJSON()` is not supported"
    );
    assert!(
        yaml::substitute("${{ vars.ID", &scope)
            .unwrap_err()
            .contains("without")
    );
}

#[test]
fn an_if_without_a_status_function_needs_every_earlier_step_to_have_passed() {
    let failed = Fixed(BTreeMap::from([("vars.ON", "yes")]), true);
    let passed = Fixed(BTreeMap::from([("vars.ON", "yes")]), false);
    assert!(!yaml::condition("vars.ON", &failed).unwrap());
    assert!(yaml::condition("vars.ON", &passed).unwrap());
    assert!(yaml::condition("${{ !cancelled() }}", &failed).unwrap());
    assert!(yaml::condition("failure()", &failed).unwrap());
    assert!(!yaml::condition("failure()", &passed).unwrap());
    assert!(!yaml::condition("success()", &failed).unwrap());
}

fn check_text(text: &str) -> Result<(), String> {
    github::check(text, &yaml::parse(text)?)
}

#[test]
fn a_workflow_using_what_the_runner_does_not_know_is_refused_before_it_runs() {
    let pinned = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1";
    let ok = format!("on: push\njobs:\n  a:\n    steps:\n      - uses: {pinned}\n");
    assert_eq!(check_text(&ok), Ok(()));
    let cases = [
        (
            ok.replace(pinned, "actions/checkout@v7"),
            "pin actions by full commit SHA",
        ),
        (
            ok.replace(" # v7.0.1", ""),
            "pin actions by full commit SHA",
        ),
        (
            format!("{ok}      - run: echo ${{{{ secrets.AZURE_CLIENT_SECRET }}}}\n"),
            "jobs.a.steps[1].run: `secrets.AZURE_CLIENT_SECRET` is not in the runner's expression set",
        ),
        (
            format!("{ok}      - run: echo ${{{{ github.event.head_commit.message }}}}\n"),
            "`github.event.head_commit.message` is not in the runner's expression set",
        ),
        (
            format!("{ok}      - if: contains(vars.X, 'y')\n        run: echo\n"),
            "jobs.a.steps[1].if: the function `contains` is not supported",
        ),
        (
            format!("{ok}defaults:\n  run: {{}}\n"),
            "workflow key `defaults`",
        ),
    ];
    for (text, error) in cases {
        let got = check_text(&text).unwrap_err();
        assert!(got.contains(error), "{got}\n--- for\n{text}");
    }
}

// ---- the runner against the sandbox, with commands every branch has ---------------------------

fn fixture_repo() -> Repo {
    Repo {
        name: REPO.into(),
        vars: BTreeMap::from([
            ("TARGET_ENV".into(), "local".into()),
            ("WHO".into(), "repository".into()),
        ]),
        environments: BTreeMap::from([(
            "local".into(),
            BTreeMap::from([("WHO".into(), "environment".into())]),
        )]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_runs_a_workflow_step_by_step_against_the_sandbox() {
    let sandbox = default_sandbox().await;
    let bench = std::sync::Arc::new(Bench::new(
        &sandbox,
        &[("local", sandbox_env("local", ""))],
        &["local"],
    ));
    let from = sandbox.requests().len();
    let b = bench.clone();
    let report = off_runtime(move || {
        let repo = fixture_repo();
        let gh = Github {
            bench: &b,
            repo: &repo,
            merged: None,
        };
        gh.run(
            &fixture("github-local.yml"),
            &Event::pull_request(7, HEAD_SHA),
            101,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        report.names(),
        [
            ("plan".to_owned(), JobResult::Success),
            ("apply (local)".to_owned(), JobResult::Success)
        ],
        "{report:#?}"
    );
    let plan = report.job("plan");
    let checkout = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1";
    assert_eq!(
        plan.outcomes(),
        steps(&[
            (checkout, ran(0)),
            (
                "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae",
                ran(0)
            ),
            ("Install provision", ran(0)),
            ("Validate", ran(0)),
            ("Render check", ran(0)),
            ("Policy test", ran(0)),
            ("Plan", ran(0)),
            ("Assemble", ran(0)),
            (
                "actions/github-script@ed597411d8f924073f98dfc5c65a23a2325f34cd",
                ran(0)
            ),
            (
                "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
                ran(0)
            ),
        ]),
        "{plan:#?}"
    );
    // A fresh sandbox: the plan has changes, exit 2 handled as an output, not a failure.
    assert_eq!(plan.step("Plan").outputs["changes"], "true");
    let plan_text = std::fs::read_to_string(plan.workspace.join("out/plan.txt")).unwrap();
    assert!(plan_text.contains("llm-gateway-api-local"), "{plan_text}");
    assert_eq!(
        *bench.comments.lock().unwrap(),
        [format!(
            "<!-- marker -->\nchanges: true at {HEAD_SHA}\n{plan_text}"
        )]
    );
    assert_eq!(
        plan.summary,
        format!("vars.WHO=repository in {REPO}\n"),
        "repository variables outside an environment"
    );
    assert_eq!(
        std::fs::read_to_string(bench.artifacts.join("101/plans/plan.txt")).unwrap(),
        plan_text
    );
    let apply = report.job("apply (local)");
    assert_eq!(apply.environment.as_deref(), Some("local"));
    assert_eq!(
        apply.outcomes(),
        steps(&[
            (checkout, ran(0)),
            ("Install provision", ran(0)),
            (
                "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
                ran(0)
            ),
            ("Apply", ran(0)),
            ("Converged", ran(0)),
            ("Tear down", ran(0)),
        ]),
        "{apply:#?}"
    );
    assert!(
        apply
            .step("Apply")
            .stdout
            .starts_with("vars.WHO=environment\n"),
        "an environment's variables override the repository's"
    );
    // What the steps did, by the sandbox's own record: the policy was written, then the group
    // deleted; nothing of local is left.
    let writes = writes_since(&sandbox, from);
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PUT ") && w.contains("/apis/llm/policies/policy")),
        "{writes:#?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("DELETE ") && w.contains("/resourceGroups/rg-llm-gateway-local")),
        "{writes:#?}"
    );
    assert_eq!(arm_of(&sandbox, "local"), Vec::<String>::new());
}

/// A workflow file in a temporary directory.
fn workflow_file(bench: &Bench, text: &str) -> PathBuf {
    let path = bench
        .dir
        .path()
        .join(format!("wf-{}.yml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_fails_its_job_skips_what_depends_on_it_and_cancels_the_next_leg() {
    let sandbox = default_sandbox().await;
    let bench = std::sync::Arc::new(Bench::new(&sandbox, &[], &[]));
    let text = r#"
on: push
jobs:
  first:
    strategy:
      matrix:
        leg: [a, b]
    steps:
      - name: ok
        run: |
          echo "leg ${{ matrix.leg }}; pkg=${CARGO_PKG_NAME:-unset}; ci=$CI"
          echo "GREETING=hello" >> "$GITHUB_ENV"
          { echo "text<<EOF"; echo "two"; echo "lines"; echo "EOF"; } >> "$GITHUB_OUTPUT"
      - name: pipefail
        run: |
          false | true
          echo not reached
      - name: skipped by default
        run: echo not reached
      - name: runs unless cancelled
        if: ${{ !cancelled() }}
        run: echo "still here, $GREETING"
      - name: runs on failure
        if: failure()
        run: exit 3
  second:
    needs: first
    steps:
      - run: echo never
"#;
    let path = workflow_file(&bench, text);
    let b = bench.clone();
    let report = off_runtime(move || {
        let repo = Repo::default();
        let gh = Github {
            bench: &b,
            repo: &repo,
            merged: None,
        };
        gh.run(&path, &Event::push_main(), 7)
    })
    .await
    .unwrap();
    assert_eq!(
        report.names(),
        [
            ("first (a)".to_owned(), JobResult::Failure),
            ("first (b)".to_owned(), JobResult::Cancelled),
            ("second".to_owned(), JobResult::Skipped),
        ]
    );
    let first = report.job("first (a)");
    assert_eq!(
        first.outcomes(),
        steps(&[
            ("ok", ran(0)),
            ("pipefail", ran(1)),
            ("skipped by default", Outcome::Skipped),
            ("runs unless cancelled", ran(0)),
            ("runs on failure", ran(3)),
        ])
    );
    // Nothing of the test's own environment (cargo sets CARGO_PKG_NAME) leaks into a step.
    assert_eq!(first.step("ok").stdout, "leg a; pkg=unset; ci=true\n");
    // `$GITHUB_OUTPUT`'s multi-line form, and `$GITHUB_ENV` reaching the later steps.
    assert_eq!(first.step("ok").outputs["text"], "two\nlines");
    assert_eq!(
        first.step("runs unless cancelled").stdout,
        "still here, hello\n"
    );
    assert_eq!(first.step("pipefail").stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_action_or_a_missing_artifact_fails_the_run_or_the_step() {
    let sandbox = default_sandbox().await;
    let bench = std::sync::Arc::new(Bench::new(&sandbox, &[], &[]));
    let unknown = workflow_file(
        &bench,
        "on: push\njobs:\n  a:\n    steps:\n      - uses: someone/deploy@3d3c42e5aac5ba805825da76410c181273ba90b1 # v1\n",
    );
    let download = "on: push\njobs:\n  a:\n    steps:\n      - uses: actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c # v8.0.1\n        with:\n          name: plans\n          path: p\n          run-id: '55'\n          github-token: t\n      - run: cargo build\n        if: always()\n";
    let missing = workflow_file(
        &bench,
        &download.replace("  a:\n", "  a:\n    permissions:\n      actions: read\n"),
    );
    let denied = workflow_file(&bench, download);
    let b = bench.clone();
    let (unknown, missing, denied) = off_runtime(move || {
        let repo = Repo::default();
        let gh = Github {
            bench: &b,
            repo: &repo,
            merged: None,
        };
        (
            gh.run(&unknown, &Event::push_main(), 1),
            gh.run(&missing, &Event::push_main(), 2),
            gh.run(&denied, &Event::push_main(), 3),
        )
    })
    .await;
    assert_eq!(
        unknown.unwrap_err(),
        "jobs.a.steps[0]: the runner has no local behaviour for \
         `someone/deploy@3d3c42e5aac5ba805825da76410c181273ba90b1`"
    );
    // Another run's artifact needs `actions: read`, as GitHub's API does.
    assert_eq!(
        denied.unwrap().job("a").steps[0].stderr,
        "Resource not accessible by integration (the job's permissions lack `actions: read`)"
    );
    let missing = missing.unwrap();
    let job = missing.job("a");
    assert_eq!(job.result, JobResult::Failure);
    let download = &job.steps[0];
    assert_eq!(download.outcome, ran(1));
    assert_eq!(
        download.stderr,
        "Artifact not found for name: plans (run 55)"
    );
    // The cargo shim knows one command only.
    assert_eq!(job.steps[1].outcome, ran(101));
    assert!(
        job.steps[1]
            .stderr
            .contains("the pipeline runner's cargo knows only: cargo install --locked --git URL --tag TAG provision (got: build)"),
        "{}",
        job.steps[1].stderr
    );
}

fn ado_org() -> ado::Organization {
    ado::Organization {
        name: "acme".into(),
        project: "llm-gateway".into(),
        tenant_id: provision::sandbox::DEFAULT_TENANT.into(),
        connections: BTreeMap::from([("fixture-connection".into(), "c0ffee".into())]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_devops_runner_picks_stages_by_trigger_and_runs_their_steps() {
    let sandbox = default_sandbox().await;
    let bench = std::sync::Arc::new(Bench::new(
        &sandbox,
        &[("local", sandbox_env("local", ""))],
        &["local"],
    ));
    let b = bench.clone();
    let (pr, main, nightly) = off_runtime(move || {
        let org = ado_org();
        let runner = ado::Ado {
            bench: &b,
            org: &org,
        };
        let file = fixture("azure-local.yml");
        (
            runner.run(&file, &ado::Trigger::pull_request(7), 301),
            runner.run(&file, &ado::Trigger::main(), 302),
            runner.run(&file, &ado::Trigger::schedule(), 303),
        )
    })
    .await;
    let (pr, main, nightly) = (pr.unwrap(), main.unwrap(), nightly.unwrap());
    let results = |list: [JobResult; 4]| -> Vec<(String, JobResult)> {
        ["checks", "plan", "deploy", "cleanup"]
            .into_iter()
            .zip(list)
            .map(|(s, r)| (s.to_owned(), r))
            .collect()
    };
    use JobResult::{Skipped, Success};
    assert_eq!(
        pr.results(),
        results([Success, Success, Skipped, Skipped]),
        "{pr:#?}"
    );
    assert_eq!(
        main.results(),
        results([Success, Success, Success, Skipped]),
        "{main:#?}"
    );
    assert_eq!(
        nightly.results(),
        results([Skipped, Skipped, Skipped, Success])
    );
    // The agent's bash has no -e: the script goes on after `false`, and the macro and the
    // predefined variables are set.
    let agent = pr.job("checks", "checks").step("Agent bash");
    assert_eq!(agent.outcome, ran(0));
    assert_eq!(
        agent.stdout,
        "no -e: PullRequest on refs/pull/7/merge, 301\n"
    );
    let plan = main.job("plan", "plan").step("Plan");
    assert_eq!(
        plan.stdout, "plan exit 2 in llm-gateway; idToken=none\n",
        "{plan:#?}"
    );
    let published =
        std::fs::read_to_string(bench.artifacts.join("302/plan-local/local.txt")).unwrap();
    assert!(published.contains("llm-gateway-api-local"), "{published}");
    let deploy = main.job("deploy", "deploy");
    assert_eq!(deploy.environment.as_deref(), Some("fixture-env"));
    assert_eq!(
        deploy.outcomes(),
        steps(&[
            ("checkout: self", ran(0)),
            ("download: current", ran(0)),
            ("Apply, converge, tear down", ran(0)),
        ]),
        "{deploy:#?}"
    );
    assert_eq!(arm_of(&sandbox, "local"), Vec::<String>::new());
    assert_eq!(
        nightly.job("cleanup", "cleanup").step("Nightly").stdout,
        "nightly\n"
    );
}

#[test]
fn azure_devops_conditions_are_the_supported_functions_only() {
    let vars = BTreeMap::from([("Build.Reason".to_owned(), "Schedule".to_owned())]);
    let eval = |text: &str, deps: &[JobResult]| {
        ado::Condition::parse(text)
            .and_then(|c| c.eval(&vars, deps))
            .map(|v| v.truthy())
    };
    assert_eq!(
        eval("eq(variables['Build.Reason'], 'schedule')", &[]),
        Ok(true)
    );
    assert_eq!(
        eval(
            "in(variables['Build.Reason'], 'Manual', 'IndividualCI')",
            &[]
        ),
        Ok(false)
    );
    assert_eq!(
        eval("and(succeeded(), not(failed()))", &[JobResult::Success]),
        Ok(true)
    );
    assert_eq!(eval("succeeded()", &[JobResult::Skipped]), Ok(false));
    assert_eq!(
        eval("startsWith(variables['Build.Reason'], 'S')", &[]),
        Err("`startsWith(variables['Build.Reason'], 'S')`: `startsWith` is not supported by the runner".into())
    );
}
