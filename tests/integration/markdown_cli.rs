//! `--output markdown`: the pull-request comments of `plan` (fresh, drifted, no change,
//! `--destroy`), `render --check` and `policy test`, compared byte for byte with the reviewed
//! files under tests/fixtures/markdown/ (regenerate with `EXPECTORATE=overwrite cargo test
//! --locked --test integration markdown_cli::`, then review the diff), the same bytes on every
//! run, and the commands that refuse the format.

use std::process::Output;

use provision::sandbox::{DEFAULT_SUBSCRIPTION, Sandbox, SandboxConfig};
use serde_json::json;

use crate::project::Project;
use crate::sandbox_support::{Arm, start};

const GROUP: &str = "rg-llm-gateway-local";
const COGNITIVE_API: &str = "2025-06-01";
pub(crate) const APIM_API: &str = "2024-05-01";

pub(crate) fn account_id() -> String {
    format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.CognitiveServices/accounts/llmgw-foundry-local"
    )
}

pub(crate) fn policy_id() -> String {
    format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ApiManagement/service/apim-llmgw-local/apis/llm/policies/policy"
    )
}

/// A sandbox on a random port and a project whose `local` environment points at it.
pub(crate) struct Stage {
    pub(crate) sandbox: Sandbox,
    pub(crate) project: Project,
}

impl Stage {
    pub(crate) async fn new() -> Stage {
        let sandbox = start(SandboxConfig::default()).await;
        let project = Project::new();
        let local = project.read("environments/local.yaml").replace(
            "address: 127.0.0.1:7171",
            &format!("address: {}", sandbox.addr()),
        );
        project.write("environments/local.yaml", &local);
        Stage { sandbox, project }
    }

    /// Runs the binary off the runtime's threads (the sandbox answers on them).
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    pub(crate) async fn up(&self) {
        let out = self.run(&["up", "--env", "local"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    /// The stored policy as it was sent (`format=rawxml`), read through ARM.
    pub(crate) async fn stored_policy(&self) -> String {
        let answer = Arm::new(&self.sandbox)
            .get(&format!(
                "{}?api-version={APIM_API}&format=rawxml",
                policy_id()
            ))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["properties"]["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Stores `xml` as the API's policy through ARM, as someone editing it in the portal would.
    pub(crate) async fn put_policy(&self, xml: &str) {
        let answer = Arm::new(&self.sandbox)
            .put(
                &format!("{}?api-version={APIM_API}", policy_id()),
                &json!({"properties": {"format": "rawxml", "value": xml}}),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    /// `plan --env local --output markdown` (plus `extra`), which must exit `code`.
    async fn markdown_plan(&self, extra: &[&str], code: i32) -> String {
        let mut args = vec!["plan", "--env", "local", "--output", "markdown"];
        args.extend(extra);
        let out = self.run(&args).await;
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        stdout(&out)
    }
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// App ids and object ids are new GUIDs in every sandbox: each GUID-shaped run of hex becomes
/// `<guid>` (the sandbox's port never appears: the comment hides it itself).
fn redact(text: &str) -> String {
    let shape = [8, 4, 4, 4, 12];
    let chars: Vec<char> = text.chars().collect();
    let hex = |c: Option<&char>| c.is_some_and(char::is_ascii_hexdigit);
    let guid_at = |at: usize| -> Option<usize> {
        if at > 0 && hex(chars.get(at - 1)) {
            return None;
        }
        let mut i = at;
        for (n, len) in shape.iter().enumerate() {
            if n > 0 {
                (chars.get(i) == Some(&'-')).then_some(())?;
                i += 1;
            }
            (0..*len).all(|k| hex(chars.get(i + k))).then_some(())?;
            i += len;
        }
        (!hex(chars.get(i))).then_some(i)
    };
    let (mut out, mut i) = (String::new(), 0);
    while i < chars.len() {
        match guid_at(i) {
            Some(end) => {
                out.push_str("<guid>");
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

fn golden(name: &str, text: &str) {
    expectorate::assert_contents(format!("tests/fixtures/markdown/{name}"), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_plan_reads_the_same_in_every_sandbox_and_run() {
    let (one, two) = (Stage::new().await, Stage::new().await);
    let first = one.markdown_plan(&["--detailed-exitcode"], 2).await;
    assert_eq!(first, one.markdown_plan(&["--detailed-exitcode"], 2).await);
    // Another sandbox on another port: the same bytes, without redacting anything.
    assert_ne!(one.sandbox.addr(), two.sandbox.addr());
    assert_eq!(first, two.markdown_plan(&[], 0).await);
    assert!(!first.contains("127.0.0.1"), "{first}");
    assert!(!first.contains('\u{1b}'), "no ANSI: {first}");
    golden("plan-fresh.md", &first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_plan_puts_security_findings_first_and_the_policy_as_a_diff() {
    let stage = Stage::new().await;
    stage.up().await;
    let arm = Arm::new(&stage.sandbox);
    // Keys turned back on, and the policy edited: a higher token limit, the client's id gone.
    let patched = arm
        .send(
            "PATCH",
            &format!("{}?api-version={COGNITIVE_API}", account_id()),
            Some(&json!({"properties": {"disableLocalAuth": false}})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let stored = stage.stored_policy().await;
    let client = stored
        .split("<application-id>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let edited = stored
        .replace(
            "tokens-per-minute=\"20000\"",
            "tokens-per-minute=\"999999\"",
        )
        .replace(&format!("<application-id>{client}</application-id>"), "");
    assert_ne!(edited, stored);
    stage.put_policy(&edited).await;

    let first = stage.markdown_plan(&["--detailed-exitcode"], 2).await;
    assert_eq!(first, stage.markdown_plan(&[], 0).await, "two runs");
    let findings = first.find("#### Security findings").unwrap();
    let changes = first.find("#### Changes").unwrap();
    assert!(findings < changes, "{first}");
    // Most severe first: both are high, keys (bypassing the gateway) before an unpinned client.
    let keys = first.find("`local-auth-enabled`").unwrap();
    let pinned = first.find("`client-not-pinned`").unwrap();
    assert!(
        findings < keys && keys < pinned && pinned < changes,
        "{first}"
    );
    assert!(
        first.contains(
            "- inbound/llm-token-limit@tokens-per-minute: 999999\n\
             + inbound/llm-token-limit@tokens-per-minute: 20000\n"
        ),
        "{first}"
    );
    assert!(
        !first.contains(&stage.sandbox.addr().to_string()),
        "{first}"
    );
    golden("plan-drifted.md", &redact(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_changes_says_so_and_a_destroy_plan_lists_what_would_go() {
    let stage = Stage::new().await;
    stage.up().await;
    let first = stage.markdown_plan(&["--detailed-exitcode"], 0).await;
    assert_eq!(first, stage.markdown_plan(&[], 0).await);
    assert!(first.contains("No changes"), "{first}");
    golden("plan-no-change.md", &redact(&first));

    let destroy = stage
        .markdown_plan(&["--destroy", "--detailed-exitcode"], 2)
        .await;
    assert_eq!(destroy, stage.markdown_plan(&["--destroy"], 0).await);
    golden("plan-destroy.md", &redact(&destroy));
}

#[test]
fn render_check_in_markdown_lists_each_difference_and_the_fix() {
    let project = Project::new();
    let run = |args: &[&str]| project.provision().args(args).output().unwrap();
    let wrote = run(&["render", "--env", "prod", "--out", "policies"]);
    assert_eq!(wrote.status.code(), Some(0), "{}", stderr(&wrote));
    let check = ["render", "--env", "prod", "--out", "policies", "--check"];
    let markdown = [&check[..], &["--output", "markdown"]].concat();

    let in_sync = run(&markdown);
    assert_eq!(in_sync.status.code(), Some(0), "{}", stderr(&in_sync));
    golden("render-check-in-sync.md", &stdout(&in_sync));

    let file = "policies/prod/llm.policy.xml";
    let committed = project.read(file);
    // A comment with characters Markdown would read (formatting only), and a header changed (a
    // difference in meaning).
    let edited = committed
        .replace("<base />", "<base/> <!-- a | `b` <c> -->")
        .replace("header-name=\"Authorization\"", "header-name=\"X-Token\"");
    assert!(!edited.contains("\"Authorization\""), "{edited}");
    project.write(file, &edited);
    project.write("policies/prod/old-api.policy.xml", "<policies/>");
    let differs = run(&markdown);
    assert_eq!(differs.status.code(), Some(1), "{}", stderr(&differs));
    let text = stdout(&differs);
    assert_eq!(text, stdout(&run(&markdown)), "two runs");
    assert!(
        text.contains(
            "```diff\n- inbound/validate-azure-ad-token@header-name: X-Token\n\
             + inbound/validate-azure-ad-token@header-name: Authorization\n```\n"
        ),
        "{text}"
    );
    golden("render-check-differs.md", &text);
    // The human form agrees on the verdict.
    assert_eq!(run(&check).status.code(), Some(1));
}

#[test]
fn policy_test_in_markdown_puts_failing_cases_first() {
    let project = Project::new();
    let run = |args: &[&str]| project.provision().args(args).output().unwrap();
    let passing = run(&["policy", "test", "--env", "prod", "--output", "markdown"]);
    assert_eq!(passing.status.code(), Some(0), "{}", stderr(&passing));
    let text = stdout(&passing);
    assert_eq!(
        text,
        stdout(&run(&[
            "policy", "test", "--env", "prod", "--output", "markdown"
        ]))
    );
    golden("policy-test-passing.md", &text);

    project.write(
        "cases/wrong.yaml",
        "cases:\n  - name: \"no token | still allowed?\"\n    expect: {decision: allow}\n",
    );
    let args = [
        "policy",
        "test",
        "--env",
        "prod",
        "--cases",
        "cases/wrong.yaml",
        "--output",
        "markdown",
    ];
    let failing = run(&args);
    assert_eq!(failing.status.code(), Some(1), "{}", stderr(&failing));
    let text = stdout(&failing);
    assert_eq!(text, stdout(&run(&args)), "two runs");
    let failing_at = text.find("#### Failing cases").unwrap();
    let passing_at = text.find("passing</summary>").unwrap();
    assert!(failing_at < passing_at, "{text}");
    golden("policy-test-failing.md", &text);
}

#[test]
fn commands_without_a_markdown_form_refuse_it_before_doing_anything() {
    let project = Project::new();
    let refused = |args: &[&str], what: &str| {
        let out = project
            .provision()
            .args(args)
            .args(["--output", "markdown"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
        assert_eq!(
            stderr(&out),
            format!(
                "error: --output markdown: {what} does not print markdown; only `plan` (also \
                 `plan --destroy`), `render --out DIR --check` and `policy test` do\n\
                 hint: use --output human or --output json for this command\n"
            ),
            "{args:?}"
        );
    };
    refused(&["whoami", "--env", "local"], "`whoami`");
    refused(&["up", "--env", "local"], "`up`");
    refused(&["validate", "--all"], "`validate`");
    refused(
        &["render", "--env", "prod"],
        "`render` without `--out DIR --check`",
    );
    refused(
        &["render", "--env", "prod", "--out", "p"],
        "`render` without `--out DIR --check`",
    );
    refused(&["policy", "diff", "a.xml", "b.xml"], "`policy diff`");
    refused(&["sandbox", "clock"], "`sandbox`");
    // Nothing was written by the refused render.
    assert!(!project.path("p").exists());
}
