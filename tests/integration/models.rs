//! Models retire and Azure upgrades them: the sandbox's model catalog over ARM, deployments of
//! retired or closed versions refused with Azure's errors, upgrades on the sandbox's clock, `410`
//! at inference once a version is retired, and what `plan`, `up` and `provision models` make of
//! all that.
//!
//! Dates that matter to a test are made relative to the sandbox's clock (a test model added to
//! the catalog), so the tests do not change verdict as real days pass.

use provision::clock::SignedDuration;
use provision::sandbox::Sandbox;
use serde_json::{Value, json};

use crate::arm_fixtures::Example;
use crate::sandbox_support::{Arm, SUBSCRIPTION, client, default_sandbox, group_path};

const API: &str = "2025-06-01";
const CS: &str = "cognitiveservices/resource-manager/Microsoft.CognitiveServices";
const DAY_S: i64 = 86_400;

fn location_models(location: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/{location}/models?api-version={API}"
    )
}

fn account_path() -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/llm",
        group_path("rg")
    )
}

/// The date `days` from the sandbox's now, as the catalog writes dates.
pub(crate) fn date_in(sandbox: &Sandbox, days: i64) -> String {
    let at = sandbox.now() + SignedDuration::from_secs(days * DAY_S);
    at.strftime("%Y-%m-%d").to_string()
}

/// Adds a model version to the sandbox's catalog, as if Microsoft had just published it.
pub(crate) fn publish(sandbox: &Sandbox, name: &str, version: &str, default: bool, retires: &str) {
    sandbox.state().arm.catalog_additions.push(json!({
        "format": "OpenAI", "name": name, "version": version,
        "lifecycleStatus": "GenerallyAvailable", "isDefaultVersion": default,
        "inference": retires, "skus": [{ "name": "GlobalStandard" }]
    }));
}

/// Moves the sandbox's clock to midnight UTC of `date` (forward only).
pub(crate) fn move_to(sandbox: &Sandbox, date: &str) {
    let target: provision::clock::Timestamp = format!("{date}T00:00:00Z").parse().unwrap();
    let by = target.duration_since(sandbox.now());
    sandbox.advance(by).unwrap();
}

/// A sandbox with a resource group and an account that takes keys (so inference needs no
/// role assignment).
async fn account() -> (Sandbox, Arm) {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let body = json!({
        "location": "swedencentral", "kind": "AIServices", "sku": { "name": "S0" },
        "properties": { "customSubDomainName": "llm-models", "disableLocalAuth": false }
    });
    let put = arm
        .put(&format!("{}?api-version={API}", account_path()), &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    arm.wait_async(put.header("azure-asyncoperation").unwrap())
        .await;
    (sandbox, arm)
}

fn deployment(model: &str, version: &str, sku: &str, upgrade: Option<&str>) -> Value {
    let mut body = json!({
        "sku": { "name": sku, "capacity": 1 },
        "properties": { "model": { "format": "OpenAI", "name": model, "version": version } }
    });
    if let Some(option) = upgrade {
        body["properties"]["versionUpgradeOption"] = json!(option);
    }
    body
}

async fn deploy(arm: &Arm, name: &str, body: &Value) -> crate::sandbox_support::Answer {
    let path = format!("{}/deployments/{name}?api-version={API}", account_path());
    let put = arm.put(&path, body).await;
    if let Some(operation) = put.header("azure-asyncoperation") {
        arm.wait_async(operation).await;
    }
    put
}

/// A fresh ARM token each time: a test that moved the clock by days outlived the last one.
async fn deployed_version(sandbox: &Sandbox, name: &str) -> Value {
    let arm = Arm::new(sandbox);
    let path = format!("{}/deployments/{name}?api-version={API}", account_path());
    arm.get(&path).await.body["properties"]["model"]["version"].clone()
}

fn model_entry<'a>(list: &'a Value, name: &str, version: &str) -> &'a Value {
    list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.get("model").unwrap_or(v))
        .find(|m| m["name"] == name && m["version"] == version)
        .unwrap_or_else(|| panic!("{name} {version} is listed"))
}

#[tokio::test]
async fn the_location_catalog_has_the_shape_of_the_specification_and_the_published_dates() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let answer = arm.get(&location_models("swedencentral")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let example = Example::load(&format!(
        "{CS}/stable/2024-10-01/examples/ListLocationModels.json"
    ));
    let shape = &example.response(200)["body"]["value"][0];
    let first = &answer.body["value"][0];
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        keys(first),
        keys(shape),
        "the wrapper: kind, model, skuName"
    );
    for key in [
        "format",
        "name",
        "version",
        "maxCapacity",
        "capabilities",
        "deprecation",
    ] {
        assert!(first["model"].get(key).is_some(), "model.{key}: {first}");
    }
    let mini = model_entry(&answer.body, "gpt-4o-mini", "2024-07-18");
    assert_eq!(mini["lifecycleStatus"], "Deprecating");
    assert_eq!(mini["isDefaultVersion"], true);
    assert_eq!(
        mini["deprecation"],
        json!({ "inference": "2027-04-14T00:00:00Z", "fineTune": "2027-10-01T00:00:00Z" })
    );
    let luna = model_entry(&answer.body, "gpt-5.6-luna", "2026-07-09");
    assert_eq!(luna["lifecycleStatus"], "GenerallyAvailable");
    assert_eq!(
        luna["skus"][0],
        json!({ "name": "GlobalStandard", "usageName": "OpenAI.GlobalStandard.gpt-5.6-luna",
                "deprecationDate": "2028-01-11T00:00:00Z",
                "capacity": { "default": 10, "maximum": 1000 } })
    );
    // A version whose date has passed on the sandbox's clock is retired: `Deprecated` in the API.
    let old = model_entry(&answer.body, "gpt-4o", "2024-05-13");
    assert_eq!(old["lifecycleStatus"], "Deprecated");
    assert_eq!(old["replacementConfig"]["targetModelName"], "gpt-5.1");
}

#[tokio::test]
async fn the_account_catalog_lists_bare_models_for_a_live_account_only() {
    let (_sandbox, arm) = account().await;
    let answer = arm
        .get(&format!("{}/models?api-version={API}", account_path()))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let mini = model_entry(&answer.body, "gpt-4o-mini", "2024-07-18");
    assert!(mini.get("kind").is_none() && mini.get("skuName").is_none());
    let missing = arm
        .get(&format!(
            "{}/providers/Microsoft.CognitiveServices/accounts/none/models?api-version={API}",
            group_path("rg")
        ))
        .await;
    assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"));
}

#[tokio::test]
async fn deployments_of_retired_closed_or_unknown_versions_are_refused_with_azures_errors() {
    let (_sandbox, arm) = account().await;
    let retired = deploy(
        &arm,
        "d-a",
        &deployment("gpt-4o", "2024-05-13", "GlobalStandard", None),
    )
    .await;
    assert_eq!(
        (retired.status, retired.code()),
        (400, "ServiceModelDeprecated")
    );
    assert_eq!(
        retired.message(),
        "The model 'Format:OpenAI,Name:gpt-4o,Version:2024-05-13' has been deprecated since 10/01/2026 00:00:00."
    );
    let closed = deploy(
        &arm,
        "d-b",
        &deployment("gpt-4o", "2024-08-06", "GlobalStandard", None),
    )
    .await;
    assert_eq!(
        (closed.status, closed.code()),
        (400, "ServiceModelDeprecating")
    );
    assert_eq!(
        closed.message(),
        "The model 'Format:OpenAI,Name:gpt-4o,Version:2024-08-06' is in deprecating state and cannot be used for new deployments."
    );
    let unknown = deploy(
        &arm,
        "d-c",
        &deployment("gpt-4.1-mini", "2024-11-20", "GlobalStandard", None),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "DeploymentModelNotSupported")
    );
    assert_eq!(
        unknown.message(),
        "The model 'Format:OpenAI,Name:gpt-4.1-mini,Version:2024-11-20' is not supported"
    );
    let sku = deploy(
        &arm,
        "d-d",
        &deployment("gpt-5.6-luna", "2026-07-09", "Standard", None),
    )
    .await;
    assert_eq!((sku.status, sku.code()), (400, "InvalidResourceProperties"));
    assert_eq!(
        sku.message(),
        "The specified SKU 'Standard' of account deployment is not supported by the model 'gpt-5.6-luna' version: '2026-07-09'."
    );
    // Nothing refused was stored.
    let list = arm
        .get(&format!("{}/deployments?api-version={API}", account_path()))
        .await;
    assert_eq!(list.body["value"], json!([]));

    // The other side: GA, an existing customer's Deprecating version, a model the catalog does
    // not know.
    for (name, model, version) in [
        ("luna", "gpt-5.6-luna", "2026-07-09"),
        ("mini", "gpt-4o-mini", "2024-07-18"),
        ("own", "my-own-model", "1"),
    ] {
        let ok = deploy(
            &arm,
            name,
            &deployment(model, version, "GlobalStandard", None),
        )
        .await;
        assert_eq!(ok.status, 201, "{model}: {}", ok.body);
    }
}

#[tokio::test]
async fn a_deployment_type_retired_before_its_version_is_refused_alone() {
    let (sandbox, arm) = account().await;
    let gone = date_in(&sandbox, -1);
    sandbox.state().arm.catalog_additions.push(json!({
        "format": "OpenAI", "name": "test-chat", "version": "1",
        "lifecycleStatus": "GenerallyAvailable", "isDefaultVersion": true,
        "inference": date_in(&sandbox, 400),
        "skus": [{ "name": "GlobalStandard" }, { "name": "Standard", "deprecationDate": gone }]
    }));
    let listed = arm.get(&location_models("swedencentral")).await;
    let entry = model_entry(&listed.body, "test-chat", "1");
    assert_eq!(
        entry["skus"][1]["deprecationDate"],
        format!("{gone}T00:00:00Z")
    );
    let regional = deploy(
        &arm,
        "regional",
        &deployment("test-chat", "1", "Standard", None),
    )
    .await;
    assert_eq!(
        (regional.status, regional.code()),
        (400, "ServiceModelDeprecated")
    );
    let (y, m, d) = (&gone[0..4], &gone[5..7], &gone[8..10]);
    assert_eq!(
        regional.message(),
        format!(
            "The model 'Format:OpenAI,Name:test-chat,Version:1' has been deprecated since {m}/{d}/{y} 00:00:00."
        )
    );
    let global = deploy(
        &arm,
        "global",
        &deployment("test-chat", "1", "GlobalStandard", None),
    )
    .await;
    assert_eq!(global.status, 201, "{}", global.body);
}

#[tokio::test]
async fn a_missing_version_is_the_catalogs_default() {
    let (sandbox, arm) = account().await;
    let body = json!({ "sku": { "name": "GlobalStandard", "capacity": 1 },
                       "properties": { "model": { "format": "OpenAI", "name": "gpt-5.6-luna" } } });
    assert_eq!(deploy(&arm, "luna", &body).await.status, 201);
    assert_eq!(deployed_version(&sandbox, "luna").await, "2026-07-09");
    publish(
        &sandbox,
        "gpt-5.6-luna",
        "2026-12-01",
        true,
        &date_in(&sandbox, 500),
    );
    let body = json!({ "sku": { "name": "GlobalStandard", "capacity": 1 },
                       "properties": { "model": { "format": "OpenAI", "name": "gpt-5.6-luna" },
                                       "versionUpgradeOption": "NoAutoUpgrade" } });
    assert_eq!(deploy(&arm, "luna2", &body).await.status, 201);
    assert_eq!(deployed_version(&sandbox, "luna2").await, "2026-12-01");
}

/// `test-chat` 1 retires in 30 days; 2 is the default from now on.
async fn two_versions() -> (Sandbox, Arm, String) {
    let (sandbox, arm) = account().await;
    let expiry = date_in(&sandbox, 30);
    publish(&sandbox, "test-chat", "1", false, &expiry);
    publish(&sandbox, "test-chat", "2", true, &date_in(&sandbox, 400));
    (sandbox, arm, expiry)
}

#[tokio::test]
async fn upgrades_happen_on_the_sandboxs_clock_as_each_deployment_says() {
    let (sandbox, arm, expiry) = two_versions().await;
    for (name, option) in [
        ("on-expiry", "OnceCurrentVersionExpired"),
        ("never", "NoAutoUpgrade"),
        ("default", "OnceNewDefaultVersionAvailable"),
    ] {
        let put = deploy(
            &arm,
            name,
            &deployment("test-chat", "1", "GlobalStandard", Some(option)),
        )
        .await;
        assert_eq!(put.status, 201, "{}", put.body);
    }
    // A new default is there already: the deployment that follows defaults moves at once.
    assert_eq!(deployed_version(&sandbox, "default").await, "2");
    assert_eq!(deployed_version(&sandbox, "on-expiry").await, "1");
    sandbox
        .advance(SignedDuration::from_secs(29 * DAY_S))
        .unwrap();
    assert_eq!(deployed_version(&sandbox, "on-expiry").await, "1");
    move_to(&sandbox, &expiry);
    assert_eq!(deployed_version(&sandbox, "on-expiry").await, "2");
    assert_eq!(deployed_version(&sandbox, "never").await, "1");
}

#[tokio::test]
async fn inference_on_a_retired_version_answers_410_and_an_upgraded_one_answers() {
    let (sandbox, arm, expiry) = two_versions().await;
    for (name, option) in [
        ("never", "NoAutoUpgrade"),
        ("on-expiry", "OnceCurrentVersionExpired"),
    ] {
        deploy(
            &arm,
            name,
            &deployment("test-chat", "1", "GlobalStandard", Some(option)),
        )
        .await;
    }
    let keys = arm
        .send(
            "POST",
            &format!("{}/listKeys?api-version={API}", account_path()),
            None,
            &[],
        )
        .await;
    let key = keys.body["key1"].as_str().unwrap().to_owned();
    let chat = |deployment: &str| {
        let url = format!(
            "{}/foundry/llm-models/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21",
            sandbox.base_url()
        );
        client()
            .post(url)
            .header("api-key", key.clone())
            .json(&json!({ "messages": [{ "role": "user", "content": "Hello" }] }))
            .send()
    };
    assert_eq!(chat("never").await.unwrap().status(), 200);
    move_to(&sandbox, &expiry);
    let gone = chat("never").await.unwrap();
    assert_eq!(gone.status(), 410);
    assert_eq!(
        gone.json::<Value>().await.unwrap(),
        json!({ "error": { "code": "ModelDeprecated",
            "message": "The model associated with the deployment is deprecated and no longer available for use. Please refer to the Azure OpenAI service documentation for more information." } })
    );
    let upgraded = chat("on-expiry").await.unwrap();
    assert_eq!(upgraded.status(), 200);
    let body: Value = upgraded.json().await.unwrap();
    assert_eq!(body["model"], "test-chat-2");
}

// ---------------------------------------------------------------------------------------------
// plan and up, the real binary against the sandbox

/// A sandbox and a project whose `local` environment points at it and deploys `test-chat` with
/// the `model:` lines and `upgrade:` given.
struct World {
    sandbox: Sandbox,
    project: crate::project::Project,
    /// The shipped `local.yaml`, which each [`World::deploy`] rewrites.
    local: String,
}

impl World {
    async fn new() -> World {
        let sandbox = default_sandbox().await;
        let project = crate::project::Project::new();
        let local = project.read("environments/local.yaml");
        World {
            sandbox,
            project,
            local,
        }
    }

    fn deploy(&self, version: &str, upgrade: &str) {
        let local = self
            .local
            .replace(
                "address: 127.0.0.1:7171",
                &format!("address: {}", self.sandbox.addr()),
            )
            .replace(
                "foundry:\n  account: llmgw-foundry-local\n",
                &format!(
                    "foundry:\n  account: llmgw-foundry-local\n  deployments:\n    - name: chat\n      \
                     model: {{ name: test-chat, version: \"{version}\" }}\n      sku: {{ name: \
                     GlobalStandard, capacity: 1 }}\n      upgrade: {upgrade}\n"
                ),
            );
        self.project.write("environments/local.yaml", &local);
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Requests that changed something, since the log's `from`th entry.
    fn writes(&self, from: usize) -> Vec<String> {
        self.sandbox.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn deployed_version(&self) -> Value {
        let id = format!(
            "/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-llm-gateway-local/providers/microsoft.cognitiveservices/accounts/llmgw-foundry-local/deployments/chat"
        );
        self.sandbox.state().arm.resources[&id].body["properties"]["model"]["version"].clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_version_stops_plan_and_up_before_any_write_naming_the_replacement() {
    let world = World::new().await;
    let retired = date_in(&world.sandbox, -1);
    publish(&world.sandbox, "test-chat", "1", false, &retired);
    publish(
        &world.sandbox,
        "test-chat",
        "2",
        true,
        &date_in(&world.sandbox, 400),
    );
    world.deploy("1", "on-expiry");
    let from = world.sandbox.requests().len();
    for command in ["plan", "up"] {
        let out = world.run(&[command, "--env", "local"]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{command}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: model test-chat version 1 retired on {retired} in swedencentral: Azure \
                 refuses new deployments of it and its inference answers 410\nhint: the \
                 replacement is the default version 2: set `model.version: \"2\"` (or `default`)\n"
            )
        );
    }
    assert_eq!(world.writes(from), Vec::<String>::new());

    // The other side: the default version plans, and the plan shows which one that is.
    world.deploy("default", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("  + foundry deployment chat\n      properties.model.format: \"OpenAI\"\n      properties.model.name: \"test-chat\"\n      properties.model.version: \"2\"\n      properties.versionUpgradeOption: \"OnceCurrentVersionExpired\"\n"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_versions_are_errors_listing_what_exists() {
    let world = World::new().await;
    publish(
        &world.sandbox,
        "test-chat",
        "1",
        true,
        &date_in(&world.sandbox, 400),
    );
    world.deploy("7", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: model test-chat version 7 is not offered in swedencentral; it offers 1\nhint: \
         set `model.version` to one of those, or to `default`\n"
    );
    world.deploy("1", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_retiring_in_30_days_is_a_warning_and_one_in_a_year_is_not() {
    let world = World::new().await;
    let soon = date_in(&world.sandbox, 30);
    publish(&world.sandbox, "test-chat", "1", false, &soon);
    publish(
        &world.sandbox,
        "test-chat",
        "2",
        true,
        &date_in(&world.sandbox, 365),
    );
    world.deploy("1", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let warning = format!(
        "\nmodel findings:\n  ! foundry deployment chat: model test-chat version 1 retires on {soon}; the \
         replacement is the default version 2: set `model.version: \"2\"` (or `default`) \
         [model-retiring]\n"
    );
    assert!(
        text(&out.stdout).contains(&warning),
        "{}",
        text(&out.stdout)
    );
    world.deploy("2", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("[model-retiring]"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_on_expiry_is_upgraded_by_azure_and_never_is_retired() {
    for (upgrade, expected) in [("on-expiry", 0), ("never", 1)] {
        let world = World::new().await;
        let expiry = date_in(&world.sandbox, 30);
        publish(&world.sandbox, "test-chat", "1", false, &expiry);
        publish(
            &world.sandbox,
            "test-chat",
            "2",
            true,
            &date_in(&world.sandbox, 400),
        );
        world.deploy("1", upgrade);
        let up = world.run(&["up", "--env", "local"]).await;
        assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
        move_to(&world.sandbox, &expiry);
        let from = world.sandbox.requests().len();
        let plan = world
            .run(&["plan", "--env", "local", "--detailed-exitcode"])
            .await;
        assert_eq!(
            plan.status.code(),
            Some(expected),
            "{upgrade}: {}",
            text(&plan.stderr)
        );
        assert_eq!(world.writes(from), Vec::<String>::new());
        if upgrade == "on-expiry" {
            assert_eq!(world.deployed_version(), "2");
            assert!(
                text(&plan.stdout).contains(
                    "  ! foundry deployment chat: upgraded by Azure from 1 to 2 (upgrade: \
                     on-expiry); set `model.version: \"2\"` to record it [model-upgraded]\n"
                ),
                "{}",
                text(&plan.stdout)
            );
            // A re-run of up changes nothing and never puts the old version back.
            let again = world.run(&["up", "--env", "local"]).await;
            assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
            assert_eq!(world.writes(from), Vec::<String>::new());
        } else {
            assert_eq!(world.deployed_version(), "1");
            assert!(
                text(&plan.stderr).starts_with(&format!(
                    "error: model test-chat version 1 retired on {expiry} in swedencentral"
                )),
                "{}",
                text(&plan.stderr)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_sandbox_locations_catalog_as_a_table_and_as_json() {
    let world = World::new().await;
    world.deploy("1", "on-expiry");
    publish(&world.sandbox, "test-chat", "1", true, "2030-01-01");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));

    let out = world.run(&["models", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "models offered in swedencentral (local)");
    assert!(lines[1].starts_with("model "), "{table}");
    assert!(
        lines[1].ends_with("skus (default/max capacity, quota left)"),
        "{table}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
    };
    assert_eq!(
        row("gpt-5.6-luna"),
        "gpt-5.6-luna 2026-07-09 yes GenerallyAvailable 2028-01-11 GlobalStandard 10/1000, 1000 \
         left; DataZoneStandard 10/1000, 1000 left"
    );
    // The deployment `up` made holds 1 unit of the test model's quota.
    assert_eq!(
        row("test-chat"),
        "test-chat 1 yes GenerallyAvailable 2030-01-01 GlobalStandard 10/1000, 999 left"
    );

    let out = world
        .run(&["models", "--env", "local", "--output", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let catalog = Arm::new(&world.sandbox)
        .get(&location_models("swedencentral"))
        .await;
    assert_eq!(
        lines.len() * 2,
        catalog.body["value"].as_array().unwrap().len()
    );
    let mini = lines.iter().find(|l| l["name"] == "gpt-4o-mini").unwrap();
    assert_eq!(
        mini,
        &json!({ "type": "model", "env": "local", "location": "swedencentral",
                 "format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18",
                 "default": true, "lifecycle": "Deprecating", "retires": "2027-04-14",
                 "skus": [
                   { "name": "GlobalStandard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 },
                   { "name": "DataZoneStandard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 },
                   { "name": "Standard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 }
                 ] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_the_locations_catalog_the_accounts_own_list_is_judged_instead() {
    let script = provision::sandbox::FaultScript::parse(
        "faults.yaml",
        "faults:\n  - method: GET\n    path: /subscriptions/*/locations/*/models*\n    status: 403\n    \
         body: { error: { code: AuthorizationFailed, message: \"no read on the subscription\" } }\n",
    )
    .unwrap();
    let sandbox = crate::sandbox_support::start(provision::sandbox::SandboxConfig {
        fault_script: Some(script),
        ..provision::sandbox::SandboxConfig::default()
    })
    .await;
    let project = crate::project::Project::new();
    let local = project.read("environments/local.yaml");
    let world = World {
        sandbox,
        project,
        local,
    };
    let expiry = date_in(&world.sandbox, 30);
    publish(&world.sandbox, "test-chat", "1", false, &expiry);
    publish(
        &world.sandbox,
        "test-chat",
        "2",
        true,
        &date_in(&world.sandbox, 400),
    );
    world.deploy("1", "never");
    // No account yet, and no right to the location's list: planned unchecked, with a warning.
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    assert!(
        text(&up.stderr).contains("the model catalog could not be read (403)"),
        "{}",
        text(&up.stderr)
    );
    move_to(&world.sandbox, &expiry);
    let plan = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan.stdout));
    assert!(
        text(&plan.stderr).starts_with(&format!(
            "error: model test-chat version 1 retired on {expiry} in swedencentral"
        )),
        "{}",
        text(&plan.stderr)
    );
    let account_lists = world
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.contains("/accounts/llmgw-foundry-local/models"))
        .count();
    assert_eq!(account_lists, 2, "one per run");
}

// ---------------------------------------------------------------------------------------------
// Replacing the API's scope

impl World {
    /// `local` with its API scope renamed to `scope`.
    fn rename_scope(&self, scope: &str) {
        let local = self
            .local
            .replace(
                "address: 127.0.0.1:7171",
                &format!("address: {}", self.sandbox.addr()),
            )
            .replace(
                "    unique_name: llm-gateway-api-local\n",
                &format!("    unique_name: llm-gateway-api-local\n    scope: {scope}\n"),
            );
        self.project.write("environments/local.yaml", &local);
    }

    /// The API app's scopes (value, enabled) and its pre-authorized scope ids, by scope value.
    fn api_app(&self) -> (Vec<(String, bool)>, Vec<String>) {
        let state = self.sandbox.state();
        let app = state
            .objects
            .iter()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .expect("the API app");
        let scopes = app.body["api"]["oauth2PermissionScopes"]
            .as_array()
            .unwrap();
        let value_of = |id: &Value| {
            scopes
                .iter()
                .find(|s| &s["id"] == id)
                .map_or("?".to_owned(), |s| s["value"].as_str().unwrap().to_owned())
        };
        let pre = app.body["api"]["preAuthorizedApplications"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["delegatedPermissionIds"].as_array().unwrap().clone())
            .map(|id| value_of(&id))
            .collect();
        let scopes = scopes
            .iter()
            .map(|s| {
                (
                    s["value"].as_str().unwrap().to_owned(),
                    s["isEnabled"] == true,
                )
            })
            .collect();
        (scopes, pre)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_scope_is_a_destructive_replacement_that_up_makes_only_when_confirmed() {
    let world = World::new().await;
    world.rename_scope("llm.invoke");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));

    world.rename_scope("llm.call");
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    assert!(
        text(&plan.stdout).starts_with(
            "-/+ entra api app llm-gateway-api-local\n      replaced: scope `llm.invoke` is \
             replaced by `llm.call`: Entra needs it disabled first, then the new scope and the \
             pre-authorizations are written; tokens for `llm.invoke` stop being issued and \
             clients that ask for it fail\n"
        ),
        "{}",
        text(&plan.stdout)
    );
    let from = world.sandbox.requests().len();
    let refused = world.run(&["up", "--env", "local"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).ends_with(
            "error: `up` would replace resources of environment local (see `replaced:` \
             above)\nhint: review the plan above and run again with --yes\n"
        ),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(world.writes(from), Vec::<String>::new());
    assert_eq!(world.api_app().0, vec![("llm.invoke".to_owned(), true)]);

    let done = world.run(&["up", "--env", "local", "--yes"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.call".to_owned(), true)],
            vec!["llm.call".to_owned()]
        )
    );
    // Disable, replace, pre-authorize: three PATCHes of the API app; the client app's asks for
    // the new scope in one more.
    let api_id = {
        let state = world.sandbox.state();
        let app = state
            .objects
            .iter()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .unwrap();
        app.str("id").unwrap().to_owned()
    };
    let patches: Vec<String> = world
        .writes(from)
        .into_iter()
        .filter(|w| w.starts_with("PATCH /v1.0/applications/"))
        .collect();
    let of_api = format!("PATCH /v1.0/applications/{api_id}");
    assert_eq!(
        patches.iter().filter(|p| **p == of_api).count(),
        3,
        "{patches:#?}"
    );
    assert_eq!(patches.len(), 4, "{patches:#?}");
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_killed_after_the_disable_is_finished_by_the_next_run() {
    let world = World::new().await;
    world.rename_scope("llm.invoke");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    // What a run killed right after its first step leaves: the old scope disabled, still there,
    // still pre-authorized.
    {
        let mut state = world.sandbox.state();
        let app = state
            .objects
            .iter_mut()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .unwrap();
        app.body.get_mut("api").unwrap()["oauth2PermissionScopes"][0]["isEnabled"] = json!(false);
    }
    world.rename_scope("llm.call");
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.invoke".to_owned(), false)],
            vec!["llm.invoke".to_owned()]
        )
    );
    // Nothing enabled is removed any more: an update, no confirmation needed.
    let again = world.run(&["up", "--env", "local"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.call".to_owned(), true)],
            vec!["llm.call".to_owned()]
        )
    );
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}

// ---------------------------------------------------------------------------------------------
// The shipped environments are current

/// Why a version may not be shipped by the catalog's own date, if it may not: it must be
/// generally available and not retire within six months of the day the catalog was taken.
fn not_current(catalog: &Value, model: &str, version: &str) -> Option<String> {
    let date = |text: &str| -> provision::clock::Timestamp {
        format!("{text}T00:00:00Z").parse().unwrap()
    };
    let taken = date(catalog["taken"].as_str().unwrap());
    let Some(entry) = catalog["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model && m["version"] == version)
    else {
        return Some(format!("{model} {version} is not in the catalog"));
    };
    if entry["lifecycleStatus"] != "GenerallyAvailable" {
        return Some(format!("{model} {version} is {}", entry["lifecycleStatus"]));
    }
    let retires = entry["inference"].as_str().unwrap();
    (date(retires) <= taken + SignedDuration::from_hours(24 * 183)).then(|| {
        format!(
            "{model} {version} retires on {retires}, within six months of the catalog's date {}",
            catalog["taken"]
        )
    })
}

fn built_in_catalog() -> Value {
    serde_json::from_str(include_str!("../../src/sandbox/arm/cognitive/catalog.json")).unwrap()
}

#[test]
fn the_currency_rule_refuses_closed_and_soon_retiring_versions() {
    let catalog = built_in_catalog();
    assert_eq!(
        not_current(&catalog, "gpt-4o-mini", "2024-07-18").as_deref(),
        Some("gpt-4o-mini 2024-07-18 is \"Deprecating\"")
    );
    assert_eq!(
        not_current(&catalog, "gpt-5-mini", "2025-08-07").as_deref(),
        Some(
            "gpt-5-mini 2025-08-07 retires on 2027-02-09, within six months of the catalog's date \"2026-12-03\""
        )
    );
    assert_eq!(not_current(&catalog, "gpt-5.6-luna", "2026-07-09"), None);
}
