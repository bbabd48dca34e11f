//! Saved plans: `plan --out FILE`, then `up --plan FILE` applies exactly that plan, or, when a
//! resource changed behind its back, nothing at all. Judged by the sandbox's recorded requests.
//! The files themselves (their binding, hostile ones, no secret) are in `saved_plan_files`.

use std::process::Output;
use std::time::Duration;

use provision::clock::SignedDuration;
use provision::sandbox::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::project::Project;
use crate::sandbox_support::{Arm, start};

const APIM_API: &str = "2024-05-01";
/// Every resource `up --env local` manages (as up_e2e counts them).
const RESOURCES: usize = 16;

fn service_id() -> String {
    format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-llm-gateway-local/providers/\
         Microsoft.ApiManagement/service/apim-llmgw-local"
    )
}

fn policy_path() -> String {
    format!(
        "{}/apis/llm/policies/policy?api-version={APIM_API}",
        service_id()
    )
}

/// A sandbox and a project whose `local` environment points at it.
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) project: Project,
    replication_lag: Duration,
}

impl World {
    pub(crate) async fn new() -> World {
        let config = SandboxConfig::default();
        let replication_lag = Duration::from_secs_f64(
            config.replication_lag_ms() as f64 / 1000.0 / config.time_scale,
        );
        let sandbox = start(config).await;
        let project = Project::new();
        let local = project.read("environments/local.yaml").replace(
            "address: 127.0.0.1:7171",
            &format!("address: {}", sandbox.addr()),
        );
        project.write("environments/local.yaml", &local);
        World {
            sandbox,
            project,
            replication_lag,
        }
    }

    /// Runs the binary off the runtime's threads (the sandbox answers on them).
    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Lets the directory's replicas catch up with what `up` wrote, so reads by `appId` see it.
    pub(crate) fn replicated(&self) {
        let lag = SignedDuration::try_from(self.replication_lag).unwrap();
        self.sandbox.advance(lag).unwrap();
    }

    pub(crate) async fn up(&self) {
        let out = self.run(&["up", "--env", "local"]).await;
        assert_exit(&out, 0);
        self.replicated();
    }

    /// `up --plan plan.json` applies, and a fresh `plan --detailed-exitcode` then finds nothing
    /// left to do.
    pub(crate) async fn applies_the_plan_and_converges(&self) {
        let out = self.run(&["up", "--plan", "plan.json"]).await;
        assert_exit(&out, 0);
        self.replicated();
        let out = self
            .run(&["plan", "--env", "local", "--detailed-exitcode"])
            .await;
        assert_exit(&out, 0);
    }

    pub(crate) async fn plan_out(&self, expected: i32) -> Output {
        let out = self
            .run(&[
                "plan",
                "--env",
                "local",
                "--out",
                "plan.json",
                "--detailed-exitcode",
            ])
            .await;
        assert_exit(&out, expected);
        out
    }

    pub(crate) fn saved(&self) -> Value {
        serde_json::from_str(&self.project.read("plan.json")).unwrap()
    }

    /// `METHOD path` of every request after the first `from`.
    pub(crate) fn requests_since(&self, from: usize) -> Vec<String> {
        self.sandbox.requests()[from..]
            .iter()
            .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
            .collect()
    }

    /// The requests after `from` that write (token requests aside).
    pub(crate) fn writes_since(&self, from: usize) -> Vec<String> {
        let token = format!("POST /{DEFAULT_TENANT}/oauth2/v2.0/token");
        self.requests_since(from)
            .into_iter()
            .filter(|r| !r.starts_with("GET ") && *r != token)
            .collect()
    }

    /// The saved fingerprint of one resource.
    pub(crate) fn fingerprint(&self, kind: &str, name: &str) -> Value {
        self.saved()["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the plan"))["fingerprint"]
            .clone()
    }
}

#[track_caller]
pub(crate) fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Edits the stored policy through ARM, as someone in the portal would: the change is a comment
/// at the top of `<inbound>`, which no plan compares, so only the ETag tells.
async fn edit_policy(world: &World, marker: &str) -> String {
    let arm = Arm::new(&world.sandbox);
    let raw = arm
        .get(&format!("{}&format=rawxml", policy_path()))
        .await
        .body["properties"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let edited = raw.replacen("<inbound>", &format!("<inbound><!-- {marker} -->"), 1);
    assert_ne!(edited, raw);
    let put = arm
        .put(
            &policy_path(),
            &json!({"properties": {"format": "rawxml", "value": edited}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    put.header("etag").unwrap().to_owned()
}

/// Removes the notebook client from the stored policy: a change the plan shows.
async fn unpin_client(world: &World) {
    let arm = Arm::new(&world.sandbox);
    let raw = arm
        .get(&format!("{}&format=rawxml", policy_path()))
        .await
        .body["properties"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = raw.find("<application-id>").unwrap();
    let end = raw.find("</application-id>").unwrap() + "</application-id>".len();
    let edited = format!("{}{}", &raw[..start], &raw[end..]);
    let put = arm
        .put(
            &policy_path(),
            &json!({"properties": {"format": "rawxml", "value": edited}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_edited_behind_the_plans_back_makes_it_stale_and_nothing_is_written() {
    let world = World::new().await;
    world.up().await;
    unpin_client(&world).await;
    world.plan_out(2).await;
    let saved = world.fingerprint("policy", "llm");
    assert_eq!(saved["by"], "etag", "{saved}");
    let before = saved["etag"].as_str().unwrap().to_owned();

    let after = edit_policy(&world, "edited in the portal").await;
    assert_ne!(after, before);
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "error: stale plan: apim api policy llm changed (ETag {before} → {after})\n\
             hint: nothing was written; run `provision plan --env local --out plan.json` again \
             and review it\n"
        )
    );
    let writes = world.writes_since(from);
    assert!(writes.is_empty(), "a stale plan wrote: {writes:?}");
    // It read every resource before refusing.
    assert!(
        world
            .requests_since(from)
            .iter()
            .any(|r| r.ends_with("/apis/llm/policies/policy")),
        "{:?}",
        world.requests_since(from)
    );

    // The same in JSON: a typed `stale` line, then the error.
    let out = world
        .run(&["up", "--plan", "plan.json", "--output", "json"])
        .await;
    assert_exit(&out, 1);
    let lines = crate::output_contract::lines(&stdout(&out));
    assert_eq!(
        lines,
        vec![
            json!({"type": "stale", "env": "local", "kind": "policy", "name": "llm",
                   "saved": format!("ETag {before}"), "found": format!("ETag {after}"),
                   "message": format!("stale plan: apim api policy llm changed (ETag {before} → {after})")}),
            json!({"type": "error",
                   "message": format!("stale plan: apim api policy llm changed (ETag {before} → {after})"),
                   "hint": "nothing was written; run `provision plan --env local --out plan.json` \
                            again and review it"}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_plan_applies_and_leaves_nothing_to_do() {
    let world = World::new().await;
    world.up().await;
    unpin_client(&world).await;
    let out = world.plan_out(2).await;
    assert!(
        stderr(&out).contains("plan saved to plan.json: `provision up --plan plan.json`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(world.saved()["changes"], true);

    let from = world.sandbox.requests().len();
    let out = world
        .run(&["up", "--plan", "plan.json", "--env", "local"])
        .await;
    assert_exit(&out, 0);
    assert!(
        stderr(&out).starts_with(
            "plan.json is current: nothing it was made from changed since; applying it to local\n"
        ),
        "{}",
        stderr(&out)
    );
    // Exactly the saved plan's one change: the policy, written once.
    let writes = world.writes_since(from);
    assert_eq!(
        writes,
        [format!("PUT {}/apis/llm/policies/policy", service_id())],
        "{writes:?}"
    );
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_exit(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_of_nothing_builds_everything_then_plans_clean() {
    let world = World::new().await;
    world.plan_out(2).await;
    let saved = world.saved();
    assert_eq!(saved["format"], "provision-plan/1");
    assert_eq!(saved["env"], "local");
    assert_eq!(saved["tool_version"], env!("CARGO_PKG_VERSION"));
    let resources = saved["resources"].as_array().unwrap();
    assert_eq!(resources.len(), RESOURCES);
    assert!(resources.iter().all(|r| r["action"] == "create"));
    // The API app is read and absent; its service principal is not read (no appId yet).
    assert_eq!(
        world.fingerprint("api_app", "llm-gateway-api-local"),
        json!({"by": "absent"})
    );
    assert_eq!(
        world.fingerprint("api_service_principal", "llm-gateway-api-local"),
        json!({"by": "not-read"})
    );
    let inputs: Vec<&str> = saved["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs[..2],
        ["environments/local.yaml", "environments/base.yaml"]
    );
    assert!(
        inputs.iter().any(|f| f.starts_with("templates/")),
        "{inputs:?}"
    );

    world.applies_the_plan_and_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_changes_applies_nothing() {
    let world = World::new().await;
    world.up().await;
    world.plan_out(0).await;
    assert_eq!(world.saved()["changes"], false);
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with(&format!(
            "local is up to date ({RESOURCES} resources, no changes, "
        )),
        "{}",
        stdout(&out)
    );
    let writes = world.writes_since(from);
    assert!(writes.is_empty(), "{writes:?}");

    // With `--output json`, a typed line says where the plan went, after the summary.
    let out = world
        .run(&[
            "plan",
            "--env",
            "local",
            "--out",
            "plan.json",
            "--output",
            "json",
        ])
        .await;
    assert_exit(&out, 0);
    let lines = crate::output_contract::lines(&stdout(&out));
    assert_eq!(
        lines.last().unwrap(),
        &json!({"type": "plan_saved", "env": "local", "path": "plan.json",
                "format": "provision-plan/1", "resources": RESOURCES, "changes": false})
    );
    assert_eq!(lines[lines.len() - 2]["type"], "summary");
}

/// The fingerprint of every ARM resource that has a version is exactly the `ETag` ARM answers a
/// GET with; the others (resource group, role assignment, Graph objects) are hashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_resources_are_fingerprinted_by_the_etag_arm_gives() {
    let world = World::new().await;
    world.up().await;
    world.plan_out(0).await;
    let account = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-llm-gateway-local/providers/\
         Microsoft.CognitiveServices/accounts/llmgw-foundry-local"
    );
    let service = service_id();
    let arm = Arm::new(&world.sandbox);
    for (kind, name, id, version) in [
        (
            "account",
            "llmgw-foundry-local",
            account.clone(),
            "2025-06-01",
        ),
        (
            "deployment",
            "gpt-5.6-luna",
            format!("{account}/deployments/gpt-5.6-luna"),
            "2025-06-01",
        ),
        (
            "apim_service",
            "apim-llmgw-local",
            service.clone(),
            APIM_API,
        ),
        (
            "backend",
            "foundry-openai",
            format!("{service}/backends/foundry-openai"),
            APIM_API,
        ),
        ("api", "llm", format!("{service}/apis/llm"), APIM_API),
        (
            "operation",
            "llm/chat-completions",
            format!("{service}/apis/llm/operations/chat-completions"),
            APIM_API,
        ),
        (
            "policy",
            "llm",
            format!("{service}/apis/llm/policies/policy"),
            APIM_API,
        ),
    ] {
        let got = arm.get(&format!("{id}?api-version={version}")).await;
        assert_eq!(got.status, 200, "{id}: {}", got.body);
        assert_eq!(
            world.fingerprint(kind, name),
            json!({"by": "etag", "etag": got.header("etag").unwrap()}),
            "{kind} {name}"
        );
    }
    let saved = world.saved();
    let hashed: Vec<&str> = saved["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fingerprint"]["by"] == "sha256")
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        hashed,
        [
            "api_app",
            "api_service_principal",
            "client_app",
            "client_service_principal",
            "api_pre_authorization",
            "resource_group",
            "role_assignment"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_created_or_deleted_behind_its_back_make_it_stale() {
    let world = World::new().await;
    world.plan_out(2).await;
    // Someone creates the resource group meanwhile.
    let arm = Arm::new(&world.sandbox);
    let group = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-llm-gateway-local?api-version=2025-04-01"
    );
    let put = arm.put(&group, &json!({"location": "swedencentral"})).await;
    assert_eq!(put.status, 201, "{}", put.body);
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with(
            "error: stale plan: resource group rg-llm-gateway-local was created since the plan\n"
        ),
        "{}",
        stderr(&out)
    );

    // After `up`, the role assignment is deleted behind the plan's back: hashed, not versioned.
    world.up().await;
    world.plan_out(0).await;
    let assignment = world.saved()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "role_assignment")
        .cloned()
        .unwrap();
    assert_eq!(assignment["fingerprint"]["by"], "sha256", "{assignment}");
    let id = {
        let state = world.sandbox.state();
        state
            .arm
            .resources
            .values()
            .find(|r| r.id.contains("/roleAssignments/"))
            .unwrap()
            .id
            .clone()
    };
    let deleted = arm.delete(&format!("{id}?api-version=2022-04-01")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: stale plan: role assignment {} was deleted since the plan\n",
            assignment["name"].as_str().unwrap()
        )),
        "{}",
        stderr(&out)
    );
    assert!(world.writes_since(from).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_environment_applies_a_saved_plan_without_asking() {
    let world = World::new().await;
    let local = world.project.read("environments/local.yaml");
    world.project.write(
        "environments/local.yaml",
        &format!("{local}protected: true\n"),
    );
    // Without a plan, a protected environment is not changed without a yes.
    let out = world.run(&["up", "--env", "local"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("hint: review the plan above and run again with --yes"),
        "{}",
        stderr(&out)
    );
    world.plan_out(2).await;
    world.applies_the_plan_and_converges().await;
}

/// A plan carries the expiry its `lifetime:` gave at planning; applied after that instant, it
/// would create what the next `down --expired` removes at once: stale, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_applied_after_its_own_expiry_is_stale() {
    let world = World::new().await;
    let local = world.project.read("environments/local.yaml");
    world
        .project
        .write("environments/local.yaml", &format!("{local}lifetime: 1h\n"));
    world.plan_out(2).await;
    let expires = world.saved()["expires"].as_str().unwrap().to_owned();
    world
        .sandbox
        .advance(SignedDuration::from_mins(61))
        .unwrap();
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "error: stale plan: its expiry mark {expires} has passed, so what it creates would be \
             torn down by the next `down --expired`\nhint: nothing was written; run `provision \
             plan --env local --out plan.json` again and review it\n"
        )
    );
    assert_eq!(world.writes_since(from), Vec::<String>::new());
}

/// An orphan (a renamed client's old registration) is in the plan as a delete, fingerprinted as
/// `listed`: gone behind the plan's back, the plan is stale; still there, `up --plan` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_deleted_behind_its_back_makes_it_stale_and_one_still_there_is_removed() {
    let world = World::new().await;
    world.up().await;
    let renamed = world.project.read("environments/local.yaml").replace(
        "unique_name: llm-gateway-notebooks-local",
        "unique_name: llm-gateway-nb2-local",
    );
    world.project.write("environments/local.yaml", &renamed);
    world.plan_out(2).await;
    assert_eq!(
        world.fingerprint("client_app", "llm-gateway-notebooks-local"),
        json!({"by": "listed"})
    );

    let now = world.sandbox.now().as_millisecond() as u64;
    let set_deleted = |deleted: Option<u64>| {
        let mut state = world.sandbox.state();
        let app = state
            .objects
            .iter_mut()
            .find(|o| {
                o.body.get("uniqueName").and_then(Value::as_str)
                    == Some("llm-gateway-notebooks-local")
            })
            .unwrap();
        app.deleted_ms = deleted;
    };
    set_deleted(Some(now));
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains(
            "stale plan: entra client app llm-gateway-notebooks-local was deleted since the plan\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(world.writes_since(from).is_empty());

    set_deleted(None);
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 0);
    let live = {
        let state = world.sandbox.state();
        state
            .objects
            .iter()
            .filter(|o| o.deleted_ms.is_none())
            .filter_map(|o| o.body.get("uniqueName").and_then(Value::as_str))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(
        !live.iter().any(|n| n == "llm-gateway-notebooks-local"),
        "{live:?}"
    );
    assert!(
        live.iter().any(|n| n == "llm-gateway-nb2-local"),
        "{live:?}"
    );
    world.replicated();
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_exit(&out, 0);
}

/// A Graph application has no version: its fingerprint is the hash of the fields the plan
/// compares. A field `provision` does not manage may change meanwhile (the plan still applies);
/// one it compares makes the plan stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_app_is_stale_only_when_a_compared_field_changes() {
    let world = World::new().await;
    world.up().await;
    world.plan_out(0).await;
    assert_eq!(
        world.fingerprint("api_app", "llm-gateway-api-local")["by"],
        "sha256"
    );
    let object_id = {
        let state = world.sandbox.state();
        state
            .objects
            .iter()
            .find(|o| {
                o.body.get("uniqueName").and_then(Value::as_str) == Some("llm-gateway-api-local")
            })
            .unwrap()
            .id()
            .to_owned()
    };
    let token = crate::sandbox_support::token(&world.sandbox, 0, "https://graph.microsoft.com");
    let patch = |body: Value| {
        let url = format!("{}/v1.0/applications/{object_id}", world.sandbox.base_url());
        let request = crate::sandbox_support::client()
            .patch(url)
            .bearer_auth(&token)
            .json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    assert_eq!(
        patch(json!({"notes": "owned by the platform team"})).await,
        204
    );
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 0);
    assert!(world.writes_since(from).is_empty());

    assert_eq!(
        patch(json!({"displayName": "Renamed in the portal"})).await,
        204
    );
    let from = world.sandbox.requests().len();
    let out = world.run(&["up", "--plan", "plan.json"]).await;
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.starts_with("error: stale plan: entra api app llm-gateway-api-local changed (SHA-256 "),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("stale plan")).count(),
        1,
        "{err}"
    );
    assert!(world.writes_since(from).is_empty());
}
