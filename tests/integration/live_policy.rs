//! `render --live` and `policy diff --env`: the policy of a deployed environment, rendered with
//! its live app ids, against what API Management stores, judged through ARM.

use provision::policy::{Document, diff};

use crate::markdown_cli::{Stage, stderr, stdout};

fn same_meaning(a: &str, b: &str) -> Vec<String> {
    diff(&Document::parse(a).unwrap(), &Document::parse(b).unwrap())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_live_is_the_policy_up_stored() {
    let stage = Stage::new().await;
    // Plain render still needs pinned ids, and now names --live.
    let plain = stage.run(&["render", "--env", "local"]).await;
    assert_eq!(plain.status.code(), Some(1));
    assert!(stderr(&plain).contains("pass --live"), "{}", stderr(&plain));

    stage.up().await;
    let before = stage.sandbox.requests().len();
    let live = stage.run(&["render", "--env", "local", "--live"]).await;
    assert_eq!(live.status.code(), Some(0), "{}", stderr(&live));
    // Reads only, and the stored policy once (the plan's own read of it).
    let requests = stage.sandbox.requests()[before..].to_vec();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    let policy_reads = requests
        .iter()
        .filter(|r| {
            r.path
                .to_ascii_lowercase()
                .starts_with(&crate::markdown_cli::policy_id().to_ascii_lowercase())
        })
        .count();
    assert_eq!(policy_reads, 1, "{requests:?}");
    let rendered = stdout(&live);
    let stored = stage.stored_policy().await;
    assert_eq!(same_meaning(&stored, &rendered), Vec::<String>::new());
    // APIM re-serialises what it stores (CRLF line ends, expressions unescaped): only the
    // meaning can match, and it must, to the last attribute.
    assert_ne!(rendered, stored);
    assert!(!rendered.contains("PLACEHOLDER"), "{rendered}");

    let json = stage
        .run(&["render", "--env", "local", "--live", "--output", "json"])
        .await;
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let line: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(line["type"], "policy");
    assert_eq!(line["xml"], rendered.as_str());
    assert_eq!(line["placeholders"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_diff_env_is_the_drift_gate_for_the_policy() {
    let stage = Stage::new().await;
    stage.up().await;
    let same = stage.run(&["policy", "diff", "--env", "local"]).await;
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert_eq!(stdout(&same), "");
    assert_eq!(
        stderr(&same),
        "the policy stored in local's API Management is a fresh render's, in meaning\n"
    );

    let stored = stage.stored_policy().await;
    let edited = stored.replace(
        "tokens-per-minute=\"20000\"",
        "tokens-per-minute=\"999999\"",
    );
    assert_ne!(edited, stored);
    stage.put_policy(&edited).await;
    let drifted = stage.run(&["policy", "diff", "--env", "local"]).await;
    assert_eq!(drifted.status.code(), Some(2), "{}", stderr(&drifted));
    assert_eq!(
        stdout(&drifted),
        "inbound/llm-token-limit@tokens-per-minute: \"999999\" → \"20000\"\n"
    );
    assert_eq!(
        stderr(&drifted),
        "hint: `provision up --env local` stores the fresh render; `provision plan --env local` \
         shows this with the rest of the environment\n"
    );

    let json = stage
        .run(&["policy", "diff", "--env", "local", "--output", "json"])
        .await;
    assert_eq!(json.status.code(), Some(2), "{}", stderr(&json));
    let line: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"type": "difference", "path": "inbound/llm-token-limit@tokens-per-minute",
            "attribute": "tokens-per-minute", "change": "changed", "old": "999999", "new": "20000"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_not_up_yet_has_no_live_policy() {
    let stage = Stage::new().await;
    let hint = "hint: run `provision up --env local` first, or `provision render --env local \
                --offline` to see the policy with placeholders\n";
    let message = "error: environment local is not up: the policy pins the app ids of app \
                   registrations that do not exist yet (entra api app llm-gateway-api-local, \
                   entra client app llm-gateway-notebooks-local)\n";
    for args in [
        &["render", "--env", "local", "--live"][..],
        &["policy", "diff", "--env", "local"][..],
    ] {
        let out = stage.run(args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
        assert_eq!(stderr(&out), format!("{message}{hint}"), "{args:?}");
    }
    // Files and --env do not mix.
    let out = stage
        .run(&["policy", "diff", "a.xml", "b.xml", "--env", "local"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stored_policy_is_an_error_that_says_to_run_up() {
    let stage = Stage::new().await;
    stage.up().await;
    // APIM deletes a policy only with If-Match (`*`: unconditionally).
    let deleted = crate::sandbox_support::Arm::new(&stage.sandbox)
        .send(
            "DELETE",
            &format!(
                "{}?api-version={}",
                crate::markdown_cli::policy_id(),
                crate::markdown_cli::APIM_API
            ),
            None,
            &[("If-Match", "*")],
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let out = stage.run(&["policy", "diff", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "error: environment local: API Management holds no policy for API llm\n\
         hint: run `provision up --env local`: it stores the policy\n"
    );
    // render --live does not need the stored policy: it is what `up` would store.
    let live = stage.run(&["render", "--env", "local", "--live"]).await;
    assert_eq!(live.status.code(), Some(0), "{}", stderr(&live));
}
