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

pub(crate) fn location_models(location: &str) -> String {
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
    // The status is the published one until the retirement date passes on the sandbox's clock,
    // which starts at the machine's: both sides are checked whatever day the suite runs on.
    let retires: provision::clock::Timestamp = "2027-04-14T00:00:00Z".parse().unwrap();
    let status_now = |published: &str, date: provision::clock::Timestamp| {
        if sandbox.now() < date {
            published.to_owned()
        } else {
            "Deprecated".to_owned()
        }
    };
    let mini = model_entry(&answer.body, "gpt-4o-mini", "2024-07-18");
    assert_eq!(mini["lifecycleStatus"], status_now("Deprecating", retires));
    assert_eq!(mini["isDefaultVersion"], true);
    assert_eq!(
        mini["deprecation"],
        json!({ "inference": "2027-04-14T00:00:00Z", "fineTune": "2027-10-01T00:00:00Z" })
    );
    let luna = model_entry(&answer.body, "gpt-5.6-luna", "2026-07-09");
    let luna_retires: provision::clock::Timestamp = "2028-01-11T00:00:00Z".parse().unwrap();
    assert_eq!(
        luna["lifecycleStatus"],
        status_now("GenerallyAvailable", luna_retires)
    );
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

    if sandbox.now() < retires {
        sandbox
            .advance(retires.duration_since(sandbox.now()))
            .unwrap();
    }
    // The earlier token has expired by then: a new one.
    let answer = Arm::new(&sandbox)
        .get(&location_models("swedencentral"))
        .await;
    let mini = model_entry(&answer.body, "gpt-4o-mini", "2024-07-18");
    assert_eq!(mini["lifecycleStatus"], "Deprecated");
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
    serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/sandbox/arm/cognitive/catalog.json"
    )))
    .unwrap()
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

/// Every deployment of every shipped environment passes [`not_current`]: the catalog is the
/// published schedule, so the next catalog update fails this test when the shipped model falls
/// behind, and the shipped files have to follow.
#[test]
fn the_shipped_environments_deploy_a_current_version() {
    let catalog = built_in_catalog();
    let dir = crate::project::manifest_dir().join("environments");
    let mut checked = 0;
    for name in ["dev", "prod", "local"] {
        let provision::config::Environment::Target(blueprint) =
            provision::config::load(&dir, name).unwrap()
        else {
            panic!("{name} is deployable");
        };
        for d in &blueprint.foundry.deployments {
            let version = d
                .model
                .version
                .as_deref()
                .expect("shipped versions are pinned");
            if let Some(problem) = not_current(&catalog, &d.model.name, version) {
                panic!(
                    "{name}: {problem}: ship a current version (`provision models --env local`)"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}
