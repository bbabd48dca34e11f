//! Microsoft.CognitiveServices in the sandbox, over HTTP: every official example replayed, then
//! the behaviours automation trips over on Azure (LRO shapes, soft delete, global subdomains,
//! keys refused without local auth, serialised deployment writes, poll hints).
//!
//! Statuses of the examples the sandbox never answers, and why:
//!
//! | example | status | why |
//! |---|---|---|
//! | CreateAccount, CreateAccountMin (all versions) | 202 | 202 on PUT is "an old model" (RPC-ASYNC); Azure answers 201 + `azure-asyncoperation` (foundry-arm.md §1.4) |
//! | DeleteAccount (all versions) | 200 | an account delete is always asynchronous here (202); the 200 is what its `Location` answers at the end, checked |
//! | DeleteDeployment (all versions) | 200 | likewise: 202, then 200 from the `Location` URL |
//! | PurgeDeletedAccount (all versions) | 200 | likewise: 202 as recorded (REC-NET1 SoftDelete), then 200 from the `Location` URL |

use provision::clock::SignedDuration;
use provision::sandbox::{LatencyProfile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::arm_fixtures::Example;
use crate::sandbox_support::{Answer, Arm, SUBSCRIPTION, default_sandbox, group_path, start};

const CS: &str = "cognitiveservices/resource-manager/Microsoft.CognitiveServices";
const API: &str = "2025-06-01";
const RG_API: &str = "2025-04-01";

fn account_path(group: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{name}",
        group_path(group)
    )
}

fn deleted_path(location: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/{location}/resourceGroups/{group}/deletedAccounts/{name}"
    )
}

fn versioned(path: &str, version: &str) -> String {
    format!("{path}?api-version={version}")
}

/// An AI Foundry account as `provision` asks for one (ARCHITECTURE.md).
fn foundry(subdomain: &str) -> Value {
    json!({
        "location": "westus",
        "kind": "AIServices",
        "sku": { "name": "S0" },
        "identity": { "type": "SystemAssigned" },
        "tags": { "managed-by": "provision" },
        "properties": {
            "customSubDomainName": subdomain,
            "disableLocalAuth": true,
            "publicNetworkAccess": "Enabled",
            "allowProjectManagement": true
        }
    })
}

fn chat_deployment(capacity: u64) -> Value {
    json!({
        "sku": { "name": "GlobalStandard", "capacity": capacity },
        "properties": {
            "model": { "format": "OpenAI", "name": "gpt-5.6-luna", "version": "2026-07-09" },
            "raiPolicyName": "Microsoft.DefaultV2"
        }
    })
}

/// PUTs an account and polls its operation to `Succeeded`.
async fn create(arm: &Arm, path: &str, version: &str, body: &Value) -> Answer {
    let put = arm.put(&versioned(path, version), body).await;
    assert_eq!(put.status, 201, "{path}: {}", put.body);
    let done = arm
        .wait_async(put.header("azure-asyncoperation").expect("an operation"))
        .await;
    assert_eq!(done.body["status"], "Succeeded", "{}", done.body);
    put
}

/// DELETEs an account (or deployment) and polls its `Location` to the end.
async fn delete(arm: &Arm, path: &str, version: &str) -> Answer {
    let answer = arm.delete(&versioned(path, version)).await;
    assert_eq!(answer.status, 202, "{path}: {}", answer.body);
    assert!(answer.header("azure-asyncoperation").is_some());
    let done = arm
        .wait_location(answer.header("location").expect("a Location"))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    answer
}

/// DELETEs a soft-deleted account and polls the purge to the end.
async fn purge(arm: &Arm, path: &str) -> Answer {
    let answer = arm.delete(&versioned(path, API)).await;
    assert_eq!(answer.status, 202, "{path}: {}", answer.body);
    let location = answer.header("location").expect("a Location").to_owned();
    assert!(
        location.ends_with("?api-version=2017-04-18&operationResultResponseType=Location"),
        "{location}"
    );
    let done = arm.wait_location(&location).await;
    assert_eq!((done.status, &done.body), (200, &Value::Null));
    answer
}

/// `checkDomainAvailability` for a subdomain.
async fn check_domain(arm: &Arm, subdomain: &str) -> Answer {
    let path = format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/checkDomainAvailability"
    );
    let body =
        json!({ "subdomainName": subdomain, "type": "Microsoft.CognitiveServices/accounts" });
    arm.send("POST", &versioned(&path, API), Some(&body), &[])
        .await
}

/// The example's response body made into a request: what a client may write.
fn writable(body: &Value) -> Value {
    let mut body = body.clone();
    let map = body.as_object_mut().unwrap();
    for key in ["id", "name", "type", "etag"] {
        map.remove(key);
    }
    if let Some(p) = map.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove("endpoint");
        p.remove("provisioningState");
    }
    body
}

fn example(file: &str) -> Example {
    Example::load(&format!("{CS}/{file}"))
}

#[tokio::test]
async fn account_examples_replay() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("myResourceGroup").await;
    for file in [
        "stable/2024-10-01/examples/CreateAccount.json",
        "stable/2024-10-01/examples/CreateAccountMin.json",
        "stable/2025-06-01/examples/CreateAccountMin.json",
    ] {
        let ex = example(file);
        let path = account_path(ex.str("resourceGroupName"), ex.str("accountName"));
        let version = ex.str("api-version");
        let created = create(&arm, &path, version, &ex.body()).await;
        ex.assert_matches(201, &created.body);
        assert_eq!(created.body["properties"]["provisioningState"], "Creating");
        let operation = created.header("azure-asyncoperation").unwrap();
        assert!(
            operation.starts_with(&format!(
                "{}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/WestUS/operationResults/",
                sandbox.base_url()
            )) && operation.ends_with("?api-version=2017-04-18"),
            "{operation}"
        );
        let again = arm.put(&versioned(&path, version), &ex.body()).await;
        assert_eq!(again.status, 200, "{file}: {}", again.body);
        ex.assert_matches(200, &again.body);
        assert_eq!(again.body["location"], "West US");
        assert!(ex.response(202).is_object());
        delete(&arm, &path, version).await;
        purge(
            &arm,
            &deleted_path("westus", "myResourceGroup", ex.str("accountName")),
        )
        .await;
    }

    for file in [
        "stable/2024-10-01/examples/GetAccount.json",
        "CognitiveServices/stable/2025-06-01/examples/GetAccount.json",
    ] {
        let ex = example(file);
        let path = account_path(ex.str("resourceGroupName"), ex.str("accountName"));
        let version = ex.str("api-version");
        create(&arm, &path, version, &writable(&ex.response(200)["body"])).await;
        let answer = arm.get(&versioned(&path, version)).await;
        assert_eq!(answer.status, 200, "{file}: {}", answer.body);
        ex.assert_matches(200, &answer.body);
        delete(&arm, &path, version).await;
        purge(
            &arm,
            &deleted_path("westus", "myResourceGroup", ex.str("accountName")),
        )
        .await;
    }

    for file in [
        "stable/2024-10-01/examples/DeleteAccount.json",
        "stable/2025-06-01/examples/DeleteAccount.json",
    ] {
        let ex = example(file);
        let path = account_path(ex.str("resourceGroupName"), ex.str("accountName"));
        let version = ex.str("api-version");
        create(&arm, &path, version, &foundry("")).await;
        let answer = delete(&arm, &path, version).await;
        assert!(ex.response(202)["headers"]["azure-asyncoperation"].is_string());
        assert!(ex.response(200).is_object());
        let absent = arm.delete(&versioned(&path, version)).await;
        assert_eq!((absent.status, &absent.body), (204, &Value::Null));
        assert!(ex.response(204).is_object());
        assert!(answer.header("retry-after-ms").is_some());
        purge(
            &arm,
            &deleted_path("westus", "myResourceGroup", ex.str("accountName")),
        )
        .await;
    }

    let ex = example("stable/2024-10-01/examples/GetDeletedAccount.json");
    let (group, name) = (ex.str("resourceGroupName"), ex.str("accountName"));
    let mut body = writable(&ex.response(200)["body"]);
    body["location"] = json!(ex.str("location"));
    create(&arm, &account_path(group, name), API, &body).await;
    delete(&arm, &account_path(group, name), API).await;
    let deleted = arm
        .get(&versioned(
            &deleted_path(ex.str("location"), group, name),
            ex.str("api-version"),
        ))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    ex.assert_matches(200, &deleted.body);
    assert_eq!(
        deleted.body["type"],
        "Microsoft.CognitiveServices/deletedAccounts"
    );

    for file in [
        "stable/2024-10-01/examples/PurgeDeletedAccount.json",
        "stable/2025-06-01/examples/PurgeDeletedAccount.json",
    ] {
        let ex = example(file);
        let (group, name) = (ex.str("resourceGroupName"), ex.str("accountName"));
        let mut body = foundry("");
        body["location"] = json!(ex.str("location"));
        create(&arm, &account_path(group, name), API, &body).await;
        delete(&arm, &account_path(group, name), API).await;
        let path = deleted_path(ex.str("location"), group, name);
        let answer = purge(&arm, &path).await;
        assert!(answer.header("azure-asyncoperation").is_some());
        assert!(ex.response(202).is_object() && ex.response(200).is_object());
        let absent = arm.delete(&versioned(&path, ex.str("api-version"))).await;
        assert_eq!(absent.status, 204);
        assert!(ex.response(204).is_object());
    }
}

#[tokio::test]
async fn deployment_examples_replay() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("resourceGroupName").await;
    let account = account_path("resourceGroupName", "accountName");
    create(&arm, &account, API, &foundry("accountname")).await;
    let deployment = |ex: &Example| {
        format!(
            "{}/deployments/{}?api-version={}",
            account_path(ex.str("resourceGroupName"), ex.str("accountName")),
            ex.str("deploymentName"),
            ex.str("api-version")
        )
    };

    for file in [
        "stable/2024-10-01/examples/PutDeployment.json",
        "CognitiveServices/stable/2025-06-01/examples/PutDeployment.json",
    ] {
        let ex = example(file);
        let path = deployment(&ex);
        let created = arm.put(&path, &ex.body()).await;
        assert_eq!(created.status, 201, "{file}: {}", created.body);
        ex.assert_matches(201, &created.body);
        assert_eq!(created.body["properties"]["provisioningState"], "Accepted");
        let done = arm
            .wait_async(created.header("azure-asyncoperation").unwrap())
            .await;
        assert_eq!(done.body["status"], "Succeeded");
        let again = arm.put(&path, &ex.body()).await;
        assert_eq!(again.status, 200, "{file}: {}", again.body);
        ex.assert_matches(200, &again.body);
        assert_eq!(again.body["properties"]["provisioningState"], "Succeeded");
        if file.starts_with("stable/2024") {
            let gone = arm.delete(&path).await;
            assert_eq!(gone.status, 202);
            arm.wait_location(gone.header("location").unwrap()).await;
        }
    }

    for file in [
        "stable/2024-10-01/examples/GetDeployment.json",
        "stable/2025-06-01/examples/GetDeployment.json",
    ] {
        let ex = example(file);
        let answer = arm.get(&deployment(&ex)).await;
        assert_eq!(answer.status, 200, "{file}: {}", answer.body);
        ex.assert_matches(200, &answer.body);
    }

    let list = example("stable/2024-10-01/examples/ListDeployments.json");
    let answer = arm
        .get(&format!(
            "{}/deployments?api-version={}",
            account_path(list.str("resourceGroupName"), list.str("accountName")),
            list.str("api-version")
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    list.assert_matches(200, &answer.body);
    assert_eq!(answer.body["value"].as_array().unwrap().len(), 1);

    for file in [
        "stable/2024-10-01/examples/DeleteDeployment.json",
        "CognitiveServices/stable/2025-06-01/examples/DeleteDeployment.json",
    ] {
        let ex = example(file);
        let path = deployment(&ex);
        if arm.get(&path).await.status == 404 {
            let put = arm.put(&path, &chat_deployment(1)).await;
            arm.wait_async(put.header("azure-asyncoperation").unwrap())
                .await;
        }
        let answer = arm.delete(&path).await;
        assert_eq!(answer.status, 202, "{file}: {}", answer.body);
        assert!(ex.response(202)["headers"]["azure-asyncoperation"].is_string());
        assert!(answer.header("azure-asyncoperation").is_some());
        let done = arm.wait_location(answer.header("location").unwrap()).await;
        assert_eq!(done.status, 200);
        assert!(ex.response(200).is_object());
        let absent = arm.delete(&path).await;
        assert_eq!((absent.status, &absent.body), (204, &Value::Null));
        assert!(ex.response(204).is_object());
    }
}

#[tokio::test]
async fn an_account_create_is_polled_from_creating_to_succeeded() {
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 50.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let path = versioned(&account_path("rg", "Foundry-1"), API);
    let put = arm.put(&path, &foundry("MyFoundry-Dev")).await;
    assert_eq!(put.status, 201, "{}", put.body);
    let properties = &put.body["properties"];
    assert_eq!(properties["provisioningState"], "Creating");
    // The sandbox's own origin, where the account's inference endpoint answers.
    let endpoint = format!("{}/foundry/myfoundry-dev/", sandbox.base_url());
    assert_eq!(properties["endpoint"], endpoint.as_str());
    assert_eq!(
        properties["endpoints"]["OpenAI Language Model Instance API"],
        endpoint.as_str()
    );
    assert_eq!(properties["endpoints"]["AI Foundry API"], endpoint.as_str());
    assert_eq!(properties["customSubDomainName"], "MyFoundry-Dev");
    assert_eq!(properties["disableLocalAuth"], true);
    assert_eq!(properties["allowProjectManagement"], true);
    assert_eq!(put.body["tags"]["managed-by"], "provision");
    assert_eq!(put.body.get("_sandbox"), None);
    assert_eq!(
        put.header("etag").unwrap(),
        put.body["etag"].as_str().unwrap()
    );
    assert!(put.header("retry-after").is_some() || put.header("retry-after-ms").is_some());

    let mut statuses = Vec::new();
    let operation = put.header("azure-asyncoperation").unwrap().to_owned();
    loop {
        let poll = arm.get(&operation).await;
        assert_eq!(poll.status, 200);
        let status = poll.body["status"].as_str().unwrap().to_owned();
        if statuses.last() != Some(&status) {
            statuses.push(status.clone());
        }
        if status == "Succeeded" {
            assert!(poll.body["endTime"].is_string());
            break;
        }
        // The resource shows the same progress (or has just finished, racing this loop).
        let state = arm.get(&path).await.body["properties"]["provisioningState"].clone();
        assert!(state == "Creating" || state == "Succeeded", "{state}");
        sandbox.advance(SignedDuration::from_millis(20)).unwrap();
    }
    assert_eq!(statuses, ["Creating", "Succeeded"]);
    let got = arm.get(&path).await;
    assert_eq!(got.body["properties"]["provisioningState"], "Succeeded");

    let principal = got.body["identity"]["principalId"].as_str().unwrap();
    assert_eq!(got.body["identity"]["type"], "SystemAssigned");
    assert_eq!(
        got.body["identity"]["tenantId"],
        provision::sandbox::DEFAULT_TENANT
    );
    {
        let state = sandbox.state();
        let sp = state
            .objects
            .iter()
            .find(|o| o.id() == principal)
            .expect("the managed identity is a service principal");
        assert_eq!(sp.body["servicePrincipalType"], "ManagedIdentity");
    }

    let again = arm.put(&path, &foundry("MyFoundry-Dev")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("azure-asyncoperation"), None);
    assert_eq!(again.body["identity"]["principalId"], principal);
    assert_eq!(
        again.body["properties"]["internalId"],
        got.body["properties"]["internalId"]
    );
    assert_ne!(again.body["etag"], got.body["etag"]);
}

#[tokio::test]
async fn writes_wait_for_a_running_account_operation() {
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 100.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let account = account_path("rg", "busy");
    let put = arm
        .put(&versioned(&account, API), &foundry("busy-sub"))
        .await;
    assert_eq!(put.status, 201);
    let again = arm
        .put(&versioned(&account, API), &foundry("busy-sub"))
        .await;
    assert_eq!((again.status, again.code()), (409, "RequestConflict"));
    let deployment = arm
        .put(
            &versioned(&format!("{account}/deployments/chat"), API),
            &chat_deployment(1),
        )
        .await;
    assert_eq!(
        (deployment.status, deployment.code(), deployment.message()),
        (
            409,
            "RequestConflict",
            format!(
                "Another operation is being performed on the parent resource '{account}'. Please try again later."
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn endpoints_follow_the_kind() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let openai = json!({
        "location": "eastus", "kind": "OpenAI", "sku": { "name": "S0" },
        "properties": { "customSubDomainName": "AOAI-Mixed" }
    });
    let answer = create(&arm, &account_path("rg", "aoai"), API, &openai).await;
    assert_eq!(
        answer.body["properties"]["endpoint"],
        format!("{}/foundry/aoai-mixed/", sandbox.base_url()).as_str()
    );
    assert_eq!(answer.body.get("identity"), None);
    let regional = json!({
        "location": "East US", "kind": "OpenAI", "sku": { "name": "S0" }, "properties": {}
    });
    let answer = create(&arm, &account_path("rg", "regional"), API, &regional).await;
    assert_eq!(
        answer.body["properties"]["endpoint"],
        "https://eastus.api.cognitive.microsoft.com/"
    );
    assert_eq!(
        answer.body["properties"]["endpoints"]["OpenAI Language Model Instance API"],
        "https://eastus.api.cognitive.microsoft.com/"
    );
    let list = arm
        .get(&versioned(
            &format!(
                "{}/providers/Microsoft.CognitiveServices/accounts",
                group_path("rg")
            ),
            API,
        ))
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_names_and_bodies_are_refused() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    for name in ["a", "-dash-first", "has%20space", &"x".repeat(65)] {
        let answer = arm
            .put(&versioned(&account_path("rg", name), API), &foundry(""))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "InvalidResourceName"),
            "{name}"
        );
    }
    let mut no_location = foundry("x");
    no_location.as_object_mut().unwrap().remove("location");
    let answer = arm
        .put(&versioned(&account_path("rg", "ok"), API), &no_location)
        .await;
    assert_eq!((answer.status, answer.code()), (400, "LocationRequired"));
    let missing = arm.get(&versioned(&account_path("rg", "nope"), API)).await;
    assert_eq!(
        (missing.status, missing.code(), missing.message()),
        (
            404,
            "ResourceNotFound",
            "The Resource 'Microsoft.CognitiveServices/accounts/nope' under resource group 'rg' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        )
    );
    let no_group = arm
        .get(&versioned(&account_path("ghost", "nope"), API))
        .await;
    assert_eq!(no_group.code(), "ResourceGroupNotFound");
}

#[tokio::test]
async fn a_soft_deleted_account_blocks_its_name_and_subdomain_until_purged() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let path = account_path("rg", "foundry");
    create(&arm, &path, API, &foundry("foundry-sub")).await;
    let deleting = arm.delete(&versioned(&path, API)).await;
    assert_eq!(deleting.status, 202);
    let operation = deleting.header("azure-asyncoperation").unwrap();
    assert!(operation.contains("/locations/westus/operationResults/"));
    assert_eq!(arm.wait_async(operation).await.body["status"], "Succeeded");
    assert_eq!(arm.get(&versioned(&path, API)).await.status, 404);

    let deleted = arm
        .get(&versioned(
            &format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/deletedAccounts"),
            API,
        ))
        .await;
    let listed = &deleted.body["value"][0];
    assert_eq!(listed["id"], deleted_path("westus", "rg", "foundry"));
    assert!(listed["properties"]["deletionDate"].is_string());
    assert!(listed["properties"]["scheduledPurgeDate"].is_string());

    let again = arm
        .put(&versioned(&path, API), &foundry("foundry-sub"))
        .await;
    assert_eq!(
        (again.status, again.code(), again.message()),
        (
            409,
            "FlagMustBeSetForRestore",
            format!(
                "An existing resource with ID '{path}' has been soft-deleted. To restore the resource, you must specify 'restore' to be 'true' in the property. If you don't want to restore existing resource, please purge it first."
            )
            .as_str()
        )
    );
    let elsewhere = arm
        .put(
            &versioned(&account_path("rg", "other"), API),
            &foundry("FOUNDRY-SUB"),
        )
        .await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (409, "CustomDomainInUse")
    );
    let taken = check_domain(&arm, "foundry-sub").await;
    assert_eq!(taken.status, 200);
    assert_eq!(taken.body["isSubdomainAvailable"], false);
    assert!(taken.body["reason"].is_string());

    purge(&arm, &deleted_path("westus", "rg", "foundry")).await;
    let gone = arm
        .get(&versioned(&deleted_path("westus", "rg", "foundry"), API))
        .await;
    assert_eq!(gone.status, 404);
    let free = check_domain(&arm, "foundry-sub").await;
    assert_eq!(
        free.body,
        json!({ "isSubdomainAvailable": true, "subdomainName": "foundry-sub", "type": "Microsoft.CognitiveServices/accounts" })
    );
    create(&arm, &path, API, &foundry("foundry-sub")).await;
}

#[tokio::test]
async fn restore_brings_back_the_same_account() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let path = account_path("rg", "keep");
    let mut body = foundry("keep-sub");
    body["properties"]["disableLocalAuth"] = json!(false);
    create(&arm, &path, API, &body).await;
    let before = arm.get(&versioned(&path, API)).await.body;
    let keys = arm
        .send(
            "POST",
            &versioned(&format!("{path}/listKeys"), API),
            None,
            &[],
        )
        .await
        .body;
    delete(&arm, &path, API).await;

    let restore = json!({
        "location": "westus", "kind": "AIServices", "sku": { "name": "S0" },
        "identity": { "type": "SystemAssigned" },
        "properties": { "restore": true }
    });
    let restored = arm.put(&versioned(&path, API), &restore).await;
    assert_eq!(restored.status, 201, "{}", restored.body);
    let properties = &restored.body["properties"];
    assert_eq!(properties["provisioningState"], "Succeeded");
    assert_eq!(properties["internalId"], before["properties"]["internalId"]);
    assert_eq!(properties["customSubDomainName"], "keep-sub");
    assert_eq!(properties.get("restore"), None);
    assert_eq!(
        restored.body["identity"]["principalId"],
        before["identity"]["principalId"]
    );
    let keys_after = arm
        .send(
            "POST",
            &versioned(&format!("{path}/listKeys"), API),
            None,
            &[],
        )
        .await
        .body;
    assert_eq!(keys_after, keys);
    let deleted = arm
        .get(&versioned(&deleted_path("westus", "rg", "keep"), API))
        .await;
    assert_eq!(deleted.status, 404);
}

#[tokio::test]
async fn custom_subdomains_are_global() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("one").await;
    arm.group("two").await;
    create(
        &arm,
        &account_path("one", "first"),
        API,
        &foundry("Shared-Name"),
    )
    .await;
    let second = arm
        .put(
            &versioned(&account_path("two", "second"), API),
            &foundry("shared-name"),
        )
        .await;
    assert_eq!(
        (second.status, second.code(), second.message()),
        (
            409,
            "CustomDomainInUse",
            "Please pick a different name. The subdomain name 'shared-name' is not available as it's already used by a resource. If the resource using the name was deleted in the last 48 hours, you may need to purge the deleted resource."
        )
    );
    let same_account = arm
        .put(
            &versioned(&account_path("one", "first"), API),
            &foundry("Shared-Name"),
        )
        .await;
    assert_eq!(same_account.status, 200);
}

#[tokio::test]
async fn deleting_the_group_soft_deletes_its_accounts() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("doomed").await;
    let account = account_path("doomed", "inside");
    create(&arm, &account, API, &foundry("inside-sub")).await;
    let put = arm
        .put(
            &versioned(&format!("{account}/deployments/chat"), API),
            &chat_deployment(1),
        )
        .await;
    assert_eq!(put.status, 201);
    let group = arm.delete(&versioned(&group_path("doomed"), RG_API)).await;
    assert_eq!(group.status, 202);
    let done = arm.wait_location(group.header("location").unwrap()).await;
    assert_eq!(done.status, 200);

    let deleted_path = deleted_path("westus", "doomed", "inside");
    let deleted = arm.get(&versioned(&deleted_path, API)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        deleted.body["properties"]["customSubDomainName"],
        "inside-sub"
    );
    assert!(
        !sandbox
            .state()
            .arm
            .resources
            .keys()
            .any(|k| k.contains("/deployments/")),
        "deployments go with their account"
    );
    purge(&arm, &deleted_path).await;
    arm.group("doomed").await;
    create(&arm, &account, API, &foundry("inside-sub")).await;
}

#[tokio::test]
async fn keys_are_refused_when_local_auth_is_disabled() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let locked = account_path("rg", "locked");
    create(&arm, &locked, API, &foundry("locked")).await;
    let refused = arm
        .send(
            "POST",
            &versioned(&format!("{locked}/listKeys"), API),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (refused.status, refused.code(), refused.message()),
        (
            400,
            "BadRequest",
            "Failed to list key. disableLocalAuth is set to be true"
        )
    );

    let open = account_path("rg", "open");
    let mut body = foundry("open");
    body["properties"]["disableLocalAuth"] = json!(false);
    create(&arm, &open, API, &body).await;
    let keys = arm
        .send(
            "POST",
            &versioned(&format!("{open}/listKeys"), API),
            None,
            &[],
        )
        .await;
    assert_eq!(keys.status, 200);
    let key1 = keys.body["key1"].as_str().unwrap().to_owned();
    assert_eq!(key1.len(), 32);
    assert_ne!(keys.body["key1"], keys.body["key2"]);
    let regenerated = arm
        .send(
            "POST",
            &versioned(&format!("{open}/regenerateKey"), API),
            Some(&json!({ "keyName": "Key1" })),
            &[],
        )
        .await;
    assert_eq!(regenerated.status, 200);
    assert_ne!(regenerated.body["key1"], json!(key1));
    assert_eq!(regenerated.body["key2"], keys.body["key2"]);
    let view = arm.get(&versioned(&open, API)).await;
    assert!(!view.body.to_string().contains(&key1));
}

#[tokio::test]
async fn deployments_echo_the_model_and_derive_their_limits() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let account = account_path("rg", "models");
    create(&arm, &account, API, &foundry("models")).await;
    let path = versioned(&format!("{account}/deployments/chat"), API);
    let created = arm.put(&path, &chat_deployment(10)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    arm.wait_async(created.header("azure-asyncoperation").unwrap())
        .await;
    let got = arm.get(&path).await;
    let properties = &got.body["properties"];
    assert_eq!(
        got.body["sku"],
        json!({ "name": "GlobalStandard", "capacity": 10 })
    );
    assert_eq!(
        properties["model"],
        json!({ "format": "OpenAI", "name": "gpt-5.6-luna", "version": "2026-07-09" })
    );
    assert_eq!(
        properties["versionUpgradeOption"],
        "OnceNewDefaultVersionAvailable"
    );
    assert_eq!(properties["raiPolicyName"], "Microsoft.DefaultV2");
    assert_eq!(properties["capabilities"]["chatCompletion"], "true");
    assert_eq!(
        properties["rateLimits"],
        json!([
            { "key": "request", "renewalPeriod": 10, "count": 10 },
            { "key": "token", "renewalPeriod": 60, "count": 10000 }
        ])
    );
    assert_eq!(properties["provisioningState"], "Succeeded");

    let same = arm.put(&path, &chat_deployment(10)).await;
    assert_eq!(same.status, 200);
    assert_eq!(same.header("azure-asyncoperation"), None);
    assert_eq!(same.header("etag"), got.header("etag"));
    let bigger = arm.put(&path, &chat_deployment(20)).await;
    assert_eq!(bigger.status, 200);
    assert_eq!(bigger.body["properties"]["provisioningState"], "Accepted");
    arm.wait_async(bigger.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(
        arm.get(&path).await.body["properties"]["currentCapacity"],
        20
    );

    let orphan = arm
        .put(
            &versioned(
                &format!("{}/deployments/chat", account_path("rg", "nope")),
                API,
            ),
            &chat_deployment(1),
        )
        .await;
    assert_eq!((orphan.status, orphan.code()), (404, "ResourceNotFound"));
    let no_model = arm
        .put(
            &versioned(&format!("{account}/deployments/bad"), API),
            &json!({ "sku": { "name": "Standard" }, "properties": {} }),
        )
        .await;
    assert_eq!(
        (no_model.status, no_model.code()),
        (400, "InvalidRequestContent")
    );
    let missing = arm
        .get(&versioned(&format!("{account}/deployments/none"), API))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_second_deployment_write_conflicts_while_one_runs() {
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 100.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let account = account_path("rg", "serial");
    create(&arm, &account, API, &foundry("serial")).await;
    let first = versioned(&format!("{account}/deployments/first"), API);
    let second = versioned(&format!("{account}/deployments/second"), API);
    let running = arm.put(&first, &chat_deployment(1)).await;
    assert_eq!(running.status, 201);
    let conflict = format!(
        "Another operation is being performed on the parent resource '{account}'. Please try again later."
    );
    let racing = arm.put(&second, &chat_deployment(1)).await;
    assert_eq!(
        (racing.status, racing.code(), racing.message()),
        (409, "RequestConflict", conflict.as_str())
    );
    let deleting = arm.delete(&first).await;
    assert_eq!((deleting.status, deleting.code()), (409, "RequestConflict"));
    arm.wait_async(running.header("azure-asyncoperation").unwrap())
        .await;
    let after = arm.put(&second, &chat_deployment(1)).await;
    assert_eq!(after.status, 201, "{}", after.body);
}

#[tokio::test]
async fn poll_hints_follow_the_sandbox_clock_and_are_never_zero() {
    async fn first_hints(sandbox: &Sandbox) -> (Answer, Answer) {
        let arm = Arm::new(sandbox);
        arm.group("rg").await;
        let put = arm
            .put(
                &versioned(&account_path("rg", "hinted"), API),
                &foundry("hinted"),
            )
            .await;
        assert_eq!(put.status, 201);
        let poll = arm.get(put.header("azure-asyncoperation").unwrap()).await;
        (put, poll)
    }

    let fast = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 1000.0,
        ..SandboxConfig::default()
    })
    .await;
    let (put, poll) = first_hints(&fast).await;
    // The first poll may already find the 30 ms operation done on a loaded machine.
    let running = poll.body["status"] == "Creating";
    for answer in [&put, &poll].into_iter().take(if running { 2 } else { 1 }) {
        assert_eq!(answer.header("retry-after"), None);
        let ms: u64 = answer.header("retry-after-ms").unwrap().parse().unwrap();
        assert!((1..=30).contains(&ms), "{ms}");
    }
    fast.advance(SignedDuration::from_millis(40)).unwrap();
    let arm = Arm::new(&fast);
    let done = arm.get(put.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(done.body["status"], "Succeeded");
    assert_eq!(done.header("retry-after"), None);
    assert_eq!(done.header("retry-after-ms"), None);

    let slow = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 10.0,
        ..SandboxConfig::default()
    })
    .await;
    let (put, poll) = first_hints(&slow).await;
    assert_eq!(put.header("retry-after"), Some("3"));
    assert_eq!(poll.body["status"], "Creating");
    let seconds: u64 = poll.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&seconds));
}
