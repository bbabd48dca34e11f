//! `provision up` and `provision plan` end to end: the real binary against an in-process sandbox,
//! judged by what the sandbox holds afterwards (not by what the tool says it did). Fresh runs,
//! re-runs, drift, faults, interrupted runs, a soft-deleted account, and reviewed snapshots of
//! plan output under tests/golden/plan/ (regenerate with `EXPECTORATE=overwrite cargo test`).

use std::collections::BTreeMap;
use std::process::{Output, Stdio};
use std::time::Duration;

use provision::clock::SignedDuration;
use provision::dice::Dice;
use provision::sandbox::{
    DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, FaultProfile, LatencyProfile, Sandbox, SandboxConfig,
};
use serde_json::{Map, Value, json};

use crate::project::Project;
use crate::sandbox_support::{Arm, start};

const API_APP: &str = "llm-gateway-api-local";
const CLIENT_APP: &str = "llm-gateway-notebooks-local";
const GROUP: &str = "rg-llm-gateway-local";
const ACCOUNT: &str = "llmgw-foundry-local";
const DEPLOYMENT: &str = "gpt-5.6-luna";
const SERVICE: &str = "apim-llmgw-local";
/// "Cognitive Services OpenAI User".
const OPENAI_USER_ROLE: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";
/// Every resource `up --env local` manages: the API app, its service principal, one client
/// app and its service principal, the pre-authorization, the group, the account, one deployment,
/// the APIM service, the backend, the API, three operations, the role assignment, the policy.
const RESOURCES: usize = 16;
const COGNITIVE_API: &str = "2025-06-01";
const APIM_API: &str = "2024-05-01";

fn group_id() -> String {
    format!("/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}")
}

fn account_id() -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}",
        group_id()
    )
}

fn deployment_id() -> String {
    format!("{}/deployments/{DEPLOYMENT}", account_id())
}

fn service_id() -> String {
    format!(
        "{}/providers/Microsoft.ApiManagement/service/{SERVICE}",
        group_id()
    )
}

fn policy_id() -> String {
    format!("{}/apis/llm/policies/policy", service_id())
}

/// A sandbox and a project whose `local` environment points at it.
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    project: Project,
    /// How long a new directory object stays invisible to reads by alternate key, in wall time.
    replication_lag: Duration,
}

impl World {
    async fn new(config: SandboxConfig) -> World {
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

    pub(crate) async fn default() -> World {
        World::new(SandboxConfig::default()).await
    }

    /// Runs the binary off the runtime's threads (the sandbox answers on them).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// `up --env local`, which must succeed.
    pub(crate) async fn up(&self) -> Output {
        let out = self.run(&["up", "--env", "local"]).await;
        assert_success(&out);
        out
    }

    /// Waits until everything written so far is visible to reads by alternate key. Until then a
    /// service principal made at the end of `up` reads as absent by its `appId`, and a plan shows
    /// it as to be created (as Graph's replicas do on Azure).
    async fn replicated(&self) {
        let lag = SignedDuration::try_from(self.replication_lag).unwrap();
        self.sandbox.advance(lag).unwrap();
    }

    /// The `sandbox.address` the project points at, as the rendered policy quotes it.
    fn address(&self) -> String {
        self.sandbox.addr().to_string()
    }

    /// A live ARM resource's body, by id (any casing).
    fn arm(&self, id: &str) -> Option<Value> {
        let state = self.sandbox.state();
        state
            .arm
            .resources
            .get(&id.to_ascii_lowercase())
            .map(|r| Value::Object(r.body.clone()))
    }

    /// Ids (lower-cased) of live ARM resources whose id contains `infix` (lower-case).
    fn arm_ids(&self, infix: &str) -> Vec<String> {
        let state = self.sandbox.state();
        state
            .arm
            .resources
            .keys()
            .filter(|k| k.contains(infix))
            .cloned()
            .collect()
    }

    /// Ids of live ARM resources of a type, as created, sorted.
    fn arm_of_type(&self, kind: &str) -> Vec<String> {
        let state = self.sandbox.state();
        let mut ids: Vec<String> = state
            .arm
            .resources
            .values()
            .filter(|r| r.body.get("type").and_then(Value::as_str) == Some(kind))
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Live directory objects of the default tenant of one kind ("application" or
    /// "servicePrincipal"), as their Graph bodies.
    fn objects(&self, kind: &str) -> Vec<Map<String, Value>> {
        let state = self.sandbox.state();
        state
            .objects
            .iter()
            .filter(|o| {
                o.deleted_ms.is_none()
                    && o.tenant_id == DEFAULT_TENANT
                    && serde_json::to_value(o.kind).unwrap() == kind
            })
            .map(|o| o.body.clone())
            .collect()
    }

    /// The live application of a uniqueName (exactly one).
    pub(crate) fn app(&self, unique_name: &str) -> Map<String, Value> {
        let apps: Vec<_> = self
            .objects("application")
            .into_iter()
            .filter(|a| a["uniqueName"] == unique_name)
            .collect();
        assert_eq!(apps.len(), 1, "applications named {unique_name}: {apps:?}");
        apps.into_iter().next().unwrap()
    }
}

#[track_caller]
fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Nothing was made twice: exactly the two apps, one service principal per appId (the apps' and
/// the two managed identities'), one account, one deployment, one APIM service, one role
/// assignment, three operations.
fn assert_no_duplicates(world: &World) {
    let mut names: Vec<String> = world
        .objects("application")
        .iter()
        .map(|a| a["uniqueName"].as_str().unwrap_or("(none)").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, [API_APP, CLIENT_APP], "live applications");
    let mut per_app_id: BTreeMap<String, usize> = BTreeMap::new();
    for sp in world.objects("servicePrincipal") {
        *per_app_id
            .entry(sp["appId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        per_app_id.values().all(|n| *n == 1),
        "service principals per appId: {per_app_id:?}"
    );
    for name in [API_APP, CLIENT_APP] {
        let app_id = world.app(name)["appId"].as_str().unwrap().to_owned();
        assert_eq!(
            per_app_id.get(&app_id),
            Some(&1),
            "{name}'s service principal"
        );
    }
    // The two managed identities (account and APIM service) and the two apps.
    assert_eq!(per_app_id.len(), 4, "{per_app_id:?}");
    let role_assignment = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}",
        account_id(),
        role_assignment_name(world)
    );
    for (kind, ids) in [
        ("Microsoft.Resources/resourceGroups", vec![group_id()]),
        ("Microsoft.CognitiveServices/accounts", vec![account_id()]),
        (
            "Microsoft.CognitiveServices/accounts/deployments",
            vec![deployment_id()],
        ),
        ("Microsoft.ApiManagement/service", vec![service_id()]),
        (
            "Microsoft.Authorization/roleAssignments",
            vec![role_assignment],
        ),
        (
            "Microsoft.ApiManagement/service/apis/operations",
            ["chat-completions", "embeddings", "responses"]
                .map(|op| format!("{}/apis/llm/operations/{op}", service_id()))
                .to_vec(),
        ),
    ] {
        assert_eq!(world.arm_of_type(kind), ids, "resources of type {kind}");
    }
}

/// The one role assignment's name (its id's last segment).
fn role_assignment_name(world: &World) -> String {
    let ids = world.arm_ids("/providers/microsoft.authorization/roleassignments/");
    assert_eq!(ids.len(), 1, "role assignments: {ids:?}");
    ids[0].rsplit('/').next().unwrap().to_owned()
}

/// `plan --detailed-exitcode` says there is nothing to do.
async fn assert_plan_clean(world: &World) {
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        format!("0 to create, 0 to update, 0 to replace, 0 to delete, {RESOURCES} unchanged.\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_up_creates_everything_once() {
    let world = World::default().await;
    world.up().await;
    assert_no_duplicates(&world);

    // Entra: the API app with its own appId in its identifier URI, v2 tokens, one scope, the
    // client pre-authorized for it; the client public, asking for that scope.
    let api = world.app(API_APP);
    let client = world.app(CLIENT_APP);
    let api_app_id = api["appId"].as_str().unwrap();
    let client_app_id = client["appId"].as_str().unwrap();
    assert_eq!(
        api["identifierUris"],
        json!([format!("api://{api_app_id}")])
    );
    assert_eq!(api["api"]["requestedAccessTokenVersion"], 2);
    let scopes = api["api"]["oauth2PermissionScopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 1, "{scopes:?}");
    assert_eq!(scopes[0]["value"], "llm.invoke");
    assert_eq!(scopes[0]["isEnabled"], true);
    let scope_id = scopes[0]["id"].as_str().unwrap();
    assert_eq!(
        api["api"]["preAuthorizedApplications"],
        json!([{"appId": client_app_id, "delegatedPermissionIds": [scope_id]}])
    );
    assert_eq!(client["isFallbackPublicClient"], true);
    assert_eq!(
        client["requiredResourceAccess"],
        json!([{"resourceAppId": api_app_id,
                "resourceAccess": [{"id": scope_id, "type": "Scope"}]}])
    );

    // The account: no keys, and the one deployment.
    let account = world.arm(&account_id()).expect("the account");
    assert_eq!(account["properties"]["disableLocalAuth"], true);
    assert_eq!(account["properties"]["provisioningState"], "Succeeded");
    assert_eq!(account["kind"], "AIServices");
    let deployment = world.arm(&deployment_id()).expect("the deployment");
    assert_eq!(
        deployment["properties"]["model"],
        json!({"format": "OpenAI", "name": "gpt-5.6-luna", "version": "2026-07-09"})
    );
    assert_eq!(
        deployment["sku"],
        json!({"name": "GlobalStandard", "capacity": 10})
    );

    // The gateway: a system identity, a backend at the account's OpenAI endpoint, the API.
    let service = world.arm(&service_id()).expect("the APIM service");
    assert_eq!(service["identity"]["type"], "SystemAssigned");
    let principal_id = service["identity"]["principalId"].as_str().unwrap();
    let endpoint = account["properties"]["endpoints"]["OpenAI Language Model Instance API"]
        .as_str()
        .unwrap();
    assert_eq!(
        endpoint,
        format!("{}/foundry/llmgw-foundry-local/", world.sandbox.base_url())
    );
    let backend = world
        .arm(&format!("{}/backends/foundry-openai", service_id()))
        .expect("the backend");
    // One slash between the endpoint and `openai`.
    assert_eq!(
        backend["properties"]["url"],
        format!("{endpoint}openai").as_str()
    );
    let api_entity = world
        .arm(&format!("{}/apis/llm", service_id()))
        .expect("the API");
    assert_eq!(api_entity["properties"]["path"], "llm");
    let mut operations: Vec<String> = world
        .arm_ids("/apis/llm/operations/")
        .iter()
        .map(|id| id.rsplit('/').next().unwrap().to_owned())
        .collect();
    operations.sort();
    assert_eq!(operations, ["chat-completions", "embeddings", "responses"]);
    let policy = world.arm(&policy_id()).expect("the policy");
    let xml = policy["properties"]["value"].as_str().unwrap();
    assert!(
        xml.contains(&format!("<audience>{api_app_id}</audience>")),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<application-id>{client_app_id}</application-id>")),
        "{xml}"
    );

    // The gateway's identity may call the account's models, and nothing else was granted.
    let name = role_assignment_name(&world);
    let assignment = world
        .arm(&format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
            account_id()
        ))
        .unwrap();
    assert_eq!(
        assignment["properties"]["roleDefinitionId"],
        format!(
            "/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER_ROLE}"
        )
        .as_str()
    );
    assert_eq!(assignment["properties"]["principalId"], principal_id);
    assert_eq!(
        assignment["properties"]["principalType"],
        "ServicePrincipal"
    );
    assert_eq!(
        assignment["properties"]["scope"].as_str().unwrap(),
        account_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_only_reads() {
    let world = World::default().await;
    world.up().await;
    let before = world.sandbox.requests().len();
    let out = world.up().await;
    assert!(
        stdout(&out).starts_with(&format!(
            "local is up to date ({RESOURCES} resources, no changes, "
        )),
        "{}",
        stdout(&out)
    );
    let second: Vec<String> = world.sandbox.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
        .collect();
    let token = format!("POST /{DEFAULT_TENANT}/oauth2/v2.0/token");
    let writes: Vec<&String> = second
        .iter()
        .filter(|r| !r.starts_with("GET ") && **r != token)
        .collect();
    assert!(writes.is_empty(), "the second run wrote: {writes:?}");
    // The binary's look at the sandbox, a token for ARM and one for Graph, the location's model
    // catalog, one read per resource, none twice, the search for orphans (ARM by tag, Graph apps by
    // tag, and the deployments, named values, backends and APIs of the account and service), and
    // the preflight's four: the two providers' registrations, the permissions at the resource group
    // and the location's usages (the name checks are for names not yet this environment's); and
    // the sandbox's clock, which model retirement is judged on.
    const ORPHAN_READS: usize = 6;
    let count = |wanted: &str| second.iter().filter(|r| *r == wanted).count();
    assert_eq!(count("GET /_sandbox/info"), 1, "{second:#?}");
    assert_eq!(count("GET /_sandbox/clock"), 1, "{second:#?}");
    assert_eq!(count(&token), 2, "{second:#?}");
    let reads: std::collections::BTreeSet<&String> = second
        .iter()
        .filter(|r| r.starts_with("GET /v1.0/") || r.starts_with("GET /subscriptions/"))
        .collect();
    assert_eq!(reads.len(), RESOURCES + ORPHAN_READS + 1 + 4, "{second:#?}");
    assert_eq!(
        second.len(),
        RESOURCES + ORPHAN_READS + 4 + 4 + 1,
        "{second:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_after_up_is_empty() {
    let world = World::default().await;
    world.up().await;
    assert_plan_clean(&world).await;
}

/// The stored policy, as it was sent (`format=rawxml`), through ARM.
async fn raw_policy(arm: &Arm) -> String {
    let answer = arm
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

async fn put_policy(arm: &Arm, xml: &str) {
    let answer = arm
        .put(
            &format!("{}?api-version={APIM_API}", policy_id()),
            &json!({"properties": {"format": "rawxml", "value": xml}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindented_policy_is_not_a_change() {
    let world = World::default().await;
    world.up().await;
    let arm = Arm::new(&world.sandbox);
    let raw = raw_policy(&arm).await;
    // Tabs instead of two spaces, LF instead of CRLF, and a blank line between elements.
    let reindented = raw
        .split("\r\n")
        .map(|line| {
            let depth = (line.len() - line.trim_start().len()) / 2;
            format!("{}{}", "\t".repeat(depth), line.trim_start())
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    assert_ne!(reindented, raw);
    put_policy(&arm, &reindented).await;
    assert_plan_clean(&world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_client_id_shows_as_a_policy_change() {
    let world = World::default().await;
    world.up().await;
    let client_app_id = world.app(CLIENT_APP)["appId"].as_str().unwrap().to_owned();
    let arm = Arm::new(&world.sandbox);
    let raw = raw_policy(&arm).await;
    let line = format!("\r\n        <application-id>{client_app_id}</application-id>");
    assert!(raw.contains(&line), "{raw}");
    put_policy(&arm, &raw.replace(&line, "")).await;

    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "  ~ apim api policy llm\n      \
             policy inbound/validate-azure-ad-token/client-application-ids: + \
             \"{client_app_id}\"\n\
             \nsecurity findings:\n  \
             ! apim api policy llm: does not allow client app {CLIENT_APP} ({client_app_id}): its \
             tokens are refused [client-not-pinned]\n\
             \n0 to create, 1 to update, 0 to replace, 0 to delete, {} unchanged.\n",
            RESOURCES - 1
        )
    );

    let out = world
        .run(&[
            "plan",
            "--env",
            "local",
            "--detailed-exitcode",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines = crate::output_contract::lines(&stdout(&out));
    let changed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "resource" && l["action"] != "no-op")
        .collect();
    assert_eq!(changed.len(), 1, "{lines:#?}");
    assert_eq!(changed[0]["kind"], "policy");
    assert_eq!(changed[0]["name"], "llm");
    assert_eq!(changed[0]["action"], "update");
    assert_eq!(changed[0]["findings"][0]["rule"], "client-not-pinned");
    assert_eq!(
        changed[0]["changes"],
        json!([{"path": "policy inbound/validate-azure-ad-token/client-application-ids",
                "old": null, "new": client_app_id}])
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (
            &summary["update"],
            &summary["unchanged"],
            &summary["changes"]
        ),
        (&json!(1), &json!(RESOURCES - 1), &json!(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_converges_through_a_flaky_cloud() {
    let world = World::new(SandboxConfig {
        faults: FaultProfile::Flaky,
        seed: 7,
        ..SandboxConfig::default()
    })
    .await;
    world.up().await;
    let faults = world
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    assert!(faults > 0, "the flaky profile injected no fault");
    assert_no_duplicates(&world);
    world.replicated().await;
    assert_plan_clean(&world).await;
}

/// Wall time of a whole `up --env local` from nothing under `realistic` latency at
/// [`KILL_TIME_SCALE`] (measured: about 2.9 s).
const KILLED_RUN_MS: u64 = 2_900;
const KILL_TIME_SCALE: f64 = 40.0;

/// `up` killed `kills` times, then run to the end: it converges, with nothing made twice, and a
/// plan after it is empty. Each kill delay is drawn from `seed` between 0.1 s and what is left of
/// a whole run's length (the sandbox's operations go on while no `up` runs, so the kills spread
/// over the run: Entra writes, ARM operations being polled, the APIM service, the policy).
async fn interrupted_runs_converge(seed: u64, kills: usize) {
    let world = World::new(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: KILL_TIME_SCALE,
        ..SandboxConfig::default()
    })
    .await;
    let mut dice = Dice::new(seed);
    // (delay, whether the run was still going when killed)
    let mut kills_done: Vec<(Duration, bool)> = Vec::new();
    let began = std::time::Instant::now();
    for _ in 0..kills {
        let left = KILLED_RUN_MS
            .saturating_sub(began.elapsed().as_millis() as u64)
            .max(200);
        let delay = Duration::from_millis(100 + dice.roll() % (left - 100));
        let program = assert_cmd::cargo::cargo_bin("provision");
        let mut child = std::process::Command::new(program)
            .current_dir(world.project.dir.path())
            .args(["--color", "never", "up", "--env", "local"])
            .env_remove("RUST_LOG")
            .env_remove("PROVISION_AUTH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Real time on purpose: the point is to kill a separate process at an unforeseen moment
        // of its wall-clock run, which no move of the sandbox's clock can stand in for.
        tokio::time::sleep(delay).await;
        let running = child.try_wait().unwrap().is_none();
        // SIGKILL: no cleanup, requests in flight abandoned mid-way.
        child.kill().unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        kills_done.push((delay, running));
    }
    assert!(
        kills_done.iter().any(|(_, running)| *running),
        "seed {seed}: no kill interrupted a run: {kills_done:?}"
    );
    let out = world.run(&["up", "--env", "local"]).await;
    assert!(
        out.status.success(),
        "seed {seed}, kills {kills_done:?}: {}",
        stderr(&out)
    );
    assert_no_duplicates(&world);
    world.replicated().await;
    assert_plan_clean(&world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_killed_at_random_points_converges_seed_1() {
    interrupted_runs_converge(1, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_killed_at_random_points_converges_seed_2() {
    interrupted_runs_converge(2, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_killed_at_random_points_converges_seed_3() {
    interrupted_runs_converge(3, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_account_stops_the_plan_with_the_remedy() {
    let world = World::default().await;
    world.up().await;
    let arm = Arm::new(&world.sandbox);
    let deleting = arm
        .delete(&format!("{}?api-version={COGNITIVE_API}", account_id()))
        .await;
    assert_eq!(deleting.status, 202, "{}", deleting.body);
    let done = arm
        .wait_async(deleting.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done.body["status"], "Succeeded", "{}", done.body);
    let deleted = arm
        .get(&format!(
            "/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/swedencentral/resourceGroups/{GROUP}/deletedAccounts/{ACCOUNT}?api-version={COGNITIVE_API}"
        ))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let date = deleted.body["properties"]["deletionDate"].as_str().unwrap();

    let expected = format!(
        "error: foundry account {ACCOUNT} was deleted on {date} and is soft-deleted: Azure keeps \
         its name for 48 hours, and creating it again fails with FlagMustBeSetForRestore\n\
         hint: purge it to free the name (`az cognitiveservices account purge --name {ACCOUNT} \
         --resource-group {GROUP} --location swedencentral`), or restore it (`az \
         cognitiveservices account recover --name {ACCOUNT} --resource-group {GROUP} \
         --location swedencentral`) and run again\n"
    );
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), expected);
    // `up` stops the same way, before writing anything.
    let before = world.sandbox.requests().len();
    let out = world.run(&["up", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stderr(&out), expected);
    let writes: Vec<String> = world.sandbox.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

/// Plan output made comparable across runs: app ids, object ids and principal ids are new GUIDs
/// in every sandbox, so every GUID-shaped string (the fixed tenant and subscription ids too) is
/// replaced with `<guid>`, and the sandbox's ephemeral address with `<sandbox>`.
fn redact(text: &str, world: &World) -> String {
    let text = text.replace(&world.address(), "<sandbox>");
    let bytes = text.as_bytes();
    let shape = [8, 4, 4, 4, 12];
    let guid_at = |at: usize| -> Option<usize> {
        let mut i = at;
        for (n, len) in shape.iter().enumerate() {
            if n > 0 {
                (bytes.get(i) == Some(&b'-')).then_some(())?;
                i += 1;
            }
            let run = bytes.get(i..i + len)?;
            run.iter().all(u8::is_ascii_hexdigit).then_some(())?;
            i += len;
        }
        // Not part of a longer run of hex digits.
        let bounded = |b: Option<&u8>| !b.is_some_and(u8::is_ascii_hexdigit);
        (bounded(bytes.get(i)) && (at == 0 || bounded(bytes.get(at - 1)))).then_some(i)
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        match guid_at(i) {
            Some(end) => {
                out.push_str("<guid>");
                i = end;
            }
            None => {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// `plan` as people and as pipelines see it, redacted, compared with tests/golden/plan/.
async fn assert_plan_snapshots(world: &World, name: &str) {
    let human = world.run(&["plan", "--env", "local"]).await;
    assert_success(&human);
    expectorate::assert_contents(
        format!("tests/golden/plan/{name}.txt"),
        &redact(&stdout(&human), world),
    );
    let json = world
        .run(&["plan", "--env", "local", "--output", "json"])
        .await;
    assert_success(&json);
    crate::output_contract::lines(&stdout(&json));
    expectorate::assert_contents(
        format!("tests/golden/plan/{name}.jsonl"),
        &redact(&stdout(&json), world),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_snapshots_of_a_fresh_environment() {
    let world = World::default().await;
    assert_plan_snapshots(&world, "fresh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_snapshots_of_a_drifted_environment() {
    let world = World::default().await;
    world.up().await;
    let arm = Arm::new(&world.sandbox);
    // Someone turned keys back on, and scaled the deployment.
    let patched = arm
        .send(
            "PATCH",
            &format!("{}?api-version={COGNITIVE_API}", account_id()),
            Some(&json!({"properties": {"disableLocalAuth": false}})),
            &[],
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let scaled = arm
        .put(
            &format!("{}?api-version={COGNITIVE_API}", deployment_id()),
            &json!({
                "sku": {"name": "GlobalStandard", "capacity": 20},
                "properties": {"model": {"format": "OpenAI", "name": "gpt-5.6-luna",
                                         "version": "2026-07-09"}},
            }),
        )
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.body);
    if let Some(operation) = scaled.header("azure-asyncoperation") {
        let done = arm.wait_async(operation).await;
        assert_eq!(done.body["status"], "Succeeded", "{}", done.body);
    }
    assert_plan_snapshots(&world, "drifted").await;
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_as_json_lines() {
    let world = World::default().await;
    let out = world
        .run(&["up", "--env", "local", "--output", "json"])
        .await;
    assert_success(&out);
    let lines = crate::output_contract::lines(&stdout(&out));
    let of_type = |t: &str| lines.iter().filter(|l| l["type"] == t).collect::<Vec<_>>();
    let resources = of_type("resource");
    assert_eq!(resources.len(), RESOURCES);
    assert!(resources.iter().all(|r| r["action"] == "create"));
    assert_eq!(of_type("summary").len(), 1);
    let progress = of_type("progress");
    let events = |e: &str| progress.iter().filter(|p| p["event"] == e).count();
    assert_eq!(
        (events("started"), events("done"), events("failed")),
        (RESOURCES, RESOURCES, 0)
    );
    let outputs = of_type("outputs");
    assert_eq!(outputs.len(), 1);
    assert_eq!(lines.last(), Some(outputs[0]));
    let writes: u64 = progress.iter().filter_map(|p| p["writes"].as_u64()).sum();
    // The API app takes two (created, then given its identifier URI); the rest one each.
    assert_eq!(writes, RESOURCES as u64 + 1);
    assert_eq!(outputs[0]["writes"], writes);
    assert_eq!(outputs[0]["api_app_id"], world.app(API_APP)["appId"]);
    assert_eq!(
        outputs[0]["clients"],
        json!([{"unique_name": CLIENT_APP, "app_id": world.app(CLIENT_APP)["appId"]}])
    );
    assert_eq!(
        outputs[0]["api_url"],
        format!("{}/apim/apim-llmgw-local/llm", world.sandbox.base_url())
    );
    assert_eq!(stderr(&out), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_environment_changes_only_with_yes() {
    let world = World::default().await;
    let local = world.project.read("environments/local.yaml");
    world.project.write(
        "environments/local.yaml",
        &format!("{local}protected: true\n"),
    );
    // No terminal to ask at: refused, and nothing written.
    let out = world.run(&["up", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(
            "error: environment local is protected, and `up` would change it\n\
             hint: review the plan above and run again with --yes\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        world
            .sandbox
            .requests()
            .iter()
            // The preflight's name checks are POSTs that only read.
            .all(|r| r.method == "GET"
                || r.path.contains("/oauth2/v2.0/token")
                || r.path.contains("/checkDomainAvailability")
                || r.path.contains("/checkNameAvailability")),
        "a refused up wrote something"
    );
    let out = world
        .run(&["up", "--env", "local", "--yes", "--timings"])
        .await;
    assert_success(&out);
    let log = stderr(&out);
    let timings = log
        .split("timings (start → end):\n")
        .nth(1)
        .expect("--timings prints its table");
    assert_eq!(
        timings.lines().take_while(|l| l.starts_with("  ")).count(),
        16,
        "a row per resource:\n{timings}"
    );
    let path: Vec<&str> = log
        .split("critical path:\n")
        .nth(1)
        .expect("and the critical path")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(path.len() >= 2, "{path:?}");
    // Under instant latency the apps, the account or the gateway may end last; whichever it is,
    // the path starts at something that depends on nothing.
    let first = path[0].trim();
    assert!(
        first.starts_with("entra api app ")
            || first.starts_with("resource group ")
            || first.starts_with("apim service "),
        "{path:?}"
    );

    // Regression: on a run with nothing to apply, --timings printed nothing at all.
    world.replicated().await;
    let out = world
        .run(&["up", "--env", "local", "--yes", "--timings"])
        .await;
    assert_success(&out);
    let log = stderr(&out);
    let note = log
        .lines()
        .find(|l| l.starts_with("timings: "))
        .unwrap_or_else(|| panic!("--timings says something on a no-op run:\n{log}"));
    assert!(
        note.starts_with(&format!(
            "timings: nothing to apply; reading {RESOURCES} resources took "
        )),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_group_in_another_location_stops_the_plan_untouched() {
    let world = World::default().await;
    let arm = Arm::new(&world.sandbox);
    let made = arm
        .put(
            &format!("{}?api-version=2025-04-01", group_id()),
            &json!({"location": "westeurope"}),
        )
        .await;
    assert_eq!(made.status, 201);
    let mark = world.sandbox.requests().len();
    let out = world.run(&["up", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(
            "error: resource group rg-llm-gateway-local exists in westeurope, and the environment \
             says swedencentral; a resource group can not move\n\
             hint: set `location` to where the group is, or name another `resource_group`\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        world.sandbox.requests()[mark..]
            .iter()
            .all(|r| r.method == "GET" || r.path.contains("/oauth2/v2.0/token")),
        "nothing is written when the plan stops"
    );
    assert_eq!(
        world.arm(&group_id()).unwrap()["location"],
        "westeurope",
        "the group is left as it was"
    );
}

/// The API app and its pre-authorization are one Graph object: a run that changes both must
/// leave both changed (the pre-authorization once wrote back the API app's old `api`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_api_app_and_its_clients_in_one_run_converges() {
    let world = World::default().await;
    world.up().await;
    let local = world
        .project
        .read("environments/local.yaml")
        .replace(
            "    display_name: LLM Gateway API (local)",
            "    display_name: LLM Gateway API (local, renamed)",
        )
        .replace(
            "      display_name: LLM Gateway notebooks (local)\n",
            "      display_name: LLM Gateway notebooks (local)\n    \
             - unique_name: llm-gateway-batch-local\n      display_name: LLM Gateway batch (local)\n      \
             redirect_uris: [\"http://localhost\"]\n",
        );
    assert!(
        local.contains("renamed") && local.contains("batch"),
        "{local}"
    );
    world.project.write("environments/local.yaml", &local);
    world.up().await;
    world.replicated().await;
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_success(&out);
    assert_eq!(
        stdout(&out),
        // A second client brings its app and service principal.
        format!(
            "0 to create, 0 to update, 0 to replace, 0 to delete, {} unchanged.\n",
            RESOURCES + 2
        )
    );
    let api = world.app(API_APP);
    assert_eq!(api["displayName"], "LLM Gateway API (local, renamed)");
    let batch = world.app("llm-gateway-batch-local");
    let pre = api["api"]["preAuthorizedApplications"].as_array().unwrap();
    assert_eq!(pre.len(), 2, "{pre:?}");
    assert!(pre.iter().any(|p| p["appId"] == batch["appId"]));
    assert_eq!(
        api["api"]["oauth2PermissionScopes"][0]["adminConsentDisplayName"],
        "Invoke LLM Gateway API (local, renamed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_to_another_tenant_stops_before_any_request() {
    let world = World::default().await;
    let local = world.project.read("environments/local.yaml").replace(
        "tenant_id: 5a4d0000-0000-4000-8000-0000000000b0",
        "tenant_id: 5a4d0000-0000-4000-8000-0000000000ff",
    );
    world.project.write("environments/local.yaml", &local);
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: signed in to tenant 5a4d0000-0000-4000-8000-0000000000b0, and \
         environments/local.yaml names tenant 5a4d0000-0000-4000-8000-0000000000ff\n\
         hint: sign in to the environment's tenant (`az login --tenant \
         5a4d0000-0000-4000-8000-0000000000ff`), or correct `tenant_id` in \
         environments/local.yaml\n"
    );
    assert!(
        world
            .sandbox
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/subscriptions") && !r.path.starts_with("/v1.0")),
        "nothing read from ARM or Graph"
    );
}
