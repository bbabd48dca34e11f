//! ARM in the sandbox, over HTTP: the front door (tokens, api-versions, headers, subscriptions,
//! cloud metadata), resource groups and role assignments, with the official examples replayed.
//!
//! Statuses of the examples the sandbox never answers, and why:
//! - ForceDeleteVMsInResourceGroup 200: a group delete is always asynchronous here (202 +
//!   Location); the 200 is what the Location URL answers at the end, checked below.
//! - CheckExistenceResourceGroups 404: produced, by asking for a group that does not exist.

use std::time::Duration;

use provision::clock::SignedDuration;
use provision::sandbox::{FaultScript, LatencyProfile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::arm_fixtures::Example;
use crate::sandbox_support::{
    Arm, SUBSCRIPTION, client, default_sandbox, group_path, start, token,
};

const RESOURCES: &str = "resources/resource-manager/Microsoft.Resources";
const AUTHZ: &str =
    "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/examples";
const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

fn user_id(sandbox: &Sandbox) -> String {
    sandbox.state().tenants[0].users[0].id.clone()
}

fn role_definition(role: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )
}

#[tokio::test]
async fn resource_group_examples_replay() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    for file in [
        "stable/2021-04-01/examples/CreateResourceGroup.json",
        "resources/stable/2024-11-01/examples/CreateResourceGroup.json",
    ] {
        let example = Example::load(&format!("{RESOURCES}/{file}"));
        let path = format!(
            "/subscriptions/{SUBSCRIPTION}/resourcegroups/{}?api-version={}",
            example.str("resourceGroupName"),
            example.str("api-version")
        );
        for expected in [201, 200] {
            let answer = arm.put(&path, &example.body()).await;
            assert_eq!(answer.status, expected, "{file}: {}", answer.body);
            example.assert_matches(expected, &answer.body);
        }
        let delete = arm.delete(&path).await;
        assert_eq!(delete.status, 202);
        arm.wait_location(delete.header("location").unwrap()).await;
    }

    let get = Example::load(&format!(
        "{RESOURCES}/stable/2021-04-01/examples/GetResourceGroups.json"
    ));
    let path = format!(
        "{}?api-version={}",
        group_path(get.str("resourceGroupName")),
        get.str("api-version")
    );
    arm.put(&path, &json!({ "location": "eastus" })).await;
    let answer = arm.get(&path).await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);

    let head = Example::load(&format!(
        "{RESOURCES}/stable/2021-04-01/examples/CheckExistenceResourceGroups.json"
    ));
    let exists = arm.send("HEAD", &path, None, &[]).await;
    assert_eq!((exists.status, &exists.body), (204, &Value::Null));
    assert!(head.response(204).is_object());
    let missing = arm
        .send(
            "HEAD",
            &format!("{}?api-version=2021-04-01", group_path("nope")),
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, 404);
    assert!(head.response(404).is_object());

    let delete = Example::load(&format!(
        "{RESOURCES}/stable/2021-04-01/examples/ForceDeleteVMsInResourceGroup.json"
    ));
    let path = format!(
        "{}?forceDeletionTypes={}&api-version={}",
        group_path(delete.str("resourceGroupName")),
        delete.str("forceDeletionTypes"),
        delete.str("api-version")
    );
    arm.put(&path, &json!({ "location": "eastus" })).await;
    let answer = arm.delete(&path).await;
    assert_eq!(answer.status, 202);
    assert!(delete.response(202).is_object());
    let done = arm.wait_location(answer.header("location").unwrap()).await;
    assert_eq!(done.status, 200);
    assert!(delete.response(200).is_object());
}

#[tokio::test]
async fn role_assignment_examples_replay() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let principal = user_id(&sandbox);
    arm.group("testrg").await;

    let by_id = Example::load(&format!("{AUTHZ}/RoleAssignments_CreateById.json"));
    let id = by_id
        .str("roleAssignmentId")
        .replace("a925f2f7-5c63-4b7b-8799-25a5f97bc3b2", SUBSCRIPTION);
    let mut body = by_id.body();
    body["properties"]["principalId"] = json!(principal);
    body["properties"]["roleDefinitionId"] = json!(
        body["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .replace("a925f2f7-5c63-4b7b-8799-25a5f97bc3b2", SUBSCRIPTION)
    );
    let path = format!("/{id}?api-version={}", by_id.str("api-version"));
    for expected in [201, 200] {
        let answer = arm.put(&path, &body).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        by_id.assert_matches(expected, &answer.body);
    }

    let get = Example::load(&format!("{AUTHZ}/RoleAssignments_Get.json"));
    let answer = arm
        .get(&format!("/{id}?api-version={}", get.str("api-version")))
        .await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);
    assert_eq!(
        answer.body["properties"]["scope"],
        format!("/subscriptions/{SUBSCRIPTION}")
    );

    // The example's scope is a Cosmos DB account; the sandbox's own resource at that place is a
    // resource group, so the assignment is scoped to one.
    let for_resource = Example::load(&format!("{AUTHZ}/RoleAssignments_CreateForResource.json"));
    let scope = group_path("testrg");
    let mut body = for_resource.body();
    body["properties"]["principalId"] = json!(principal);
    body["properties"]["roleDefinitionId"] = json!(role_definition(OPENAI_USER));
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={}",
        for_resource.str("roleAssignmentName"),
        for_resource.str("api-version")
    );
    for expected in [201, 200] {
        let answer = arm.put(&path, &body).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        for_resource.assert_matches(expected, &answer.body);
    }

    let delete = Example::load(&format!("{AUTHZ}/RoleAssignments_Delete.json"));
    let path = format!("/{id}?api-version={}", delete.str("api-version"));
    let answer = arm.delete(&path).await;
    assert_eq!(answer.status, 200);
    delete.assert_matches(200, &answer.body);
    let again = arm.delete(&path).await;
    assert_eq!((again.status, &again.body), (204, &Value::Null));
    assert!(delete.response(204).is_object());
}

#[tokio::test]
async fn arm_wants_an_arm_token_from_the_subscriptions_tenant() {
    let sandbox = default_sandbox().await;
    let path = format!("{}?api-version=2025-04-01", group_path("rg"));

    let anonymous = Arm::anonymous(&sandbox).get(&path).await;
    assert_eq!(
        (anonymous.status, anonymous.code(), anonymous.message()),
        (
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing."
        )
    );
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );

    let mut graph = Arm::new(&sandbox);
    graph.token = Some(token(&sandbox, 0, "https://graph.microsoft.com"));
    let wrong = graph.get(&path).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
    assert!(
        wrong.message().contains("'https://graph.microsoft.com'"),
        "{}",
        wrong.message()
    );

    let mut tampered = Arm::new(&sandbox);
    tampered.token = tampered.token.map(|t| format!("{t}x"));
    let invalid = tampered.get(&path).await;
    assert_eq!(
        (invalid.status, invalid.code()),
        (401, "InvalidAuthenticationToken")
    );

    let mut foreign = Arm::new(&sandbox);
    foreign.token = Some(token(&sandbox, 1, "https://management.azure.com/"));
    let other_tenant = foreign.get(&path).await;
    assert_eq!(
        (other_tenant.status, other_tenant.code()),
        (401, "InvalidAuthenticationTokenTenant")
    );
    let listed = foreign.get("/subscriptions?api-version=2022-12-01").await;
    assert_eq!((listed.status, &listed.body["value"]), (200, &json!([])));
}

#[tokio::test]
async fn api_versions_are_required_and_must_be_known() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let missing = arm.get(&group_path("rg")).await;
    assert_eq!(
        (missing.status, missing.code(), missing.message()),
        (
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests."
        )
    );
    let unknown = arm
        .get(&format!("{}?api-version=2099-01-01", group_path("rg")))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "InvalidApiVersionParameter")
    );
    assert!(
        unknown.message().starts_with(
            "The api-version '2099-01-01' is invalid. The supported versions are '2025-04-01,"
        ),
        "{}",
        unknown.message()
    );
    // An APIM version is not a Cognitive Services version.
    let crossed = arm
        .get(&format!(
            "{}/providers/Microsoft.CognitiveServices/accounts/a?api-version=2024-05-01",
            group_path("rg")
        ))
        .await;
    assert_eq!(crossed.code(), "InvalidApiVersionParameter");
    // A namespace no provider serves is a routing error whatever the version, as ARM answers it
    // (the az CLI and Azure PowerShell print "The resource namespace '…' is invalid.").
    arm.group("rg").await;
    for version in ["2099-01-01", "2024-05-01"] {
        let nowhere = arm
            .get(&format!(
                "{}/providers/Microsoft.Nowhere/things/a?api-version={version}",
                group_path("rg")
            ))
            .await;
        assert_eq!(
            (nowhere.status, nowhere.code(), nowhere.message()),
            (
                400,
                "InvalidResourceNamespace",
                "The resource namespace 'Microsoft.Nowhere' is invalid."
            )
        );
    }
}

#[tokio::test]
async fn paths_match_ignoring_case_and_keep_the_casing_of_creation() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let created = arm
        .put(
            &format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/My-RG?api-version=2025-04-01"),
            &json!({ "location": "West US", "tags": { "managed-by": "provision" } }),
        )
        .await;
    assert_eq!(created.status, 201);
    let read = arm
        .get(&format!(
            "/SUBSCRIPTIONS/{SUBSCRIPTION}/RESOURCEGROUPS/my-rg?api-version=2025-04-01"
        ))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body,
        json!({
            "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/My-RG"),
            "name": "My-RG",
            "type": "Microsoft.Resources/resourceGroups",
            "location": "westus",
            "tags": { "managed-by": "provision" },
            "properties": { "provisioningState": "Succeeded" }
        })
    );
    let moved = arm
        .put(
            &format!("{}?api-version=2025-04-01", group_path("my-rg")),
            &json!({ "location": "eastus" }),
        )
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (409, "InvalidResourceGroupLocation")
    );
    let list = arm
        .get(&format!(
            "/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=2025-04-01"
        ))
        .await;
    assert_eq!(list.body["value"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn arm_headers_and_not_found_errors_are_armlike() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let answer = arm
        .send(
            "GET",
            &format!("{}?api-version=2025-04-01", group_path("absent")),
            None,
            &[
                (
                    "x-ms-correlation-request-id",
                    "c0ffee00-0000-4000-8000-000000000001",
                ),
                (
                    "x-ms-client-request-id",
                    "c1e70000-0000-4000-8000-000000000002",
                ),
                ("x-ms-return-client-request-id", "true"),
            ],
        )
        .await;
    assert_eq!(
        answer.body,
        json!({ "error": { "code": "ResourceGroupNotFound", "message": "Resource group 'absent' could not be found." } })
    );
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("x-ms-failure-cause"), Some("gateway"));
    assert_eq!(
        answer.header("x-ms-correlation-request-id"),
        Some("c0ffee00-0000-4000-8000-000000000001")
    );
    assert_eq!(
        answer.header("x-ms-client-request-id"),
        Some("c1e70000-0000-4000-8000-000000000002")
    );
    assert_eq!(answer.header("x-ms-request-id").map(str::len), Some(36));
    assert_eq!(
        answer.header("x-ms-ratelimit-remaining-subscription-reads"),
        Some("11999")
    );

    // A resource under a missing group is the group's 404, not the resource's.
    let child = arm
        .get(&format!(
            "{}/providers/Microsoft.ApiManagement/service/s?api-version=2024-05-01",
            group_path("absent")
        ))
        .await;
    assert_eq!((child.status, child.code()), (404, "ResourceGroupNotFound"));

    let unknown = arm
        .get("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups?api-version=2025-04-01")
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "SubscriptionNotFound")
    );
}

#[tokio::test]
async fn subscriptions_and_cloud_metadata_serve_azure_clients() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let list = arm.get("/subscriptions?api-version=2022-12-01").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["value"][0]["subscriptionId"], SUBSCRIPTION);
    assert_eq!(list.body["value"][0]["state"], "Enabled");
    assert_eq!(
        list.body["value"][0]["tenantId"],
        provision::sandbox::DEFAULT_TENANT
    );
    let one = arm
        .get(&format!(
            "/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01"
        ))
        .await;
    assert_eq!(one.body, list.body["value"][0]);

    let http = client();
    let base = sandbox.base_url();
    let old: Value = http
        .get(format!("{base}/metadata/endpoints?api-version=2019-05-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(old["resourceManager"], format!("{base}/"));
    assert_eq!(old["authentication"]["loginEndpoint"], base);
    let new: Value = http
        .get(format!("{base}/metadata/endpoints?api-version=2022-09-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(new, old);
    let all: Value = http
        .get(format!("{base}/metadata/endpoints?api-version=2020-06-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all, json!([old]));
}

#[tokio::test]
async fn role_assignments_conflict_on_the_same_grant_under_another_name() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let principal = user_id(&sandbox);
    let assignment = |name: &str| {
        format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01",
            group_path("rg")
        )
    };
    let body = json!({ "properties": {
        "roleDefinitionId": role_definition(OPENAI_USER),
        "principalId": principal,
        "principalType": "User"
    }});
    let first = arm
        .put(&assignment("11111111-1111-4111-8111-111111111111"), &body)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = arm
        .put(&assignment("11111111-1111-4111-8111-111111111111"), &body)
        .await;
    assert_eq!(again.status, 200);
    let twin = arm
        .put(&assignment("22222222-2222-4222-8222-222222222222"), &body)
        .await;
    assert_eq!(
        (twin.status, twin.code(), twin.message()),
        (
            409,
            "RoleAssignmentExists",
            "The role assignment already exists."
        )
    );
    let mut other = body.clone();
    other["properties"]["principalId"] = json!(sandbox.state().tenants[0].users[1].id);
    let changed = arm
        .put(&assignment("11111111-1111-4111-8111-111111111111"), &other)
        .await;
    assert_eq!(
        (changed.status, changed.code()),
        (400, "RoleAssignmentUpdateNotPermitted")
    );
    let not_guid = arm.put(&assignment("apim-reads-model"), &body).await;
    assert_eq!(
        (not_guid.status, not_guid.code()),
        (400, "InvalidRoleAssignmentId")
    );

    let filtered = arm
        .get(&format!(
            "{}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'{principal}'",
            group_path("rg")
        ))
        .await;
    assert_eq!(filtered.status, 200, "{}", filtered.body);
    let names: Vec<&str> = filtered.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["11111111-1111-4111-8111-111111111111"]);
}

#[tokio::test]
async fn a_new_principal_is_not_found_until_it_replicates() {
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(400),
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let graph_token = token(&sandbox, 0, "https://graph.microsoft.com");
    let http = client();
    let graph = |path: &str, body: Value| {
        http.post(format!("{}/v1.0{path}", sandbox.base_url()))
            .bearer_auth(&graph_token)
            .json(&body)
            .send()
    };
    let app: Value = graph("/applications", json!({ "displayName": "apim" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The application itself replicates first: Graph refuses a principal for it until then.
    let mut sp = Value::Null;
    for _ in 0..50 {
        let answer = graph("/servicePrincipals", json!({ "appId": app["appId"] }))
            .await
            .unwrap();
        if answer.status() == 201 {
            sp = answer.json().await.unwrap();
            break;
        }
        sandbox.advance(SignedDuration::from_millis(20)).unwrap();
    }
    let principal = sp["id"].as_str().unwrap().to_owned();
    let path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/33333333-3333-4333-8333-333333333333?api-version=2022-04-01",
        group_path("rg")
    );
    let body = json!({ "properties": {
        "roleDefinitionId": role_definition(OPENAI_USER),
        "principalId": principal,
        "principalType": "ServicePrincipal"
    }});
    let early = arm.put(&path, &body).await;
    assert_eq!((early.status, early.code()), (400, "PrincipalNotFound"));
    assert_eq!(
        early.message(),
        format!(
            "Principal {principal} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
            provision::sandbox::DEFAULT_TENANT
        )
    );
    sandbox.advance(SignedDuration::from_millis(450)).unwrap();
    let later = arm.put(&path, &body).await;
    assert_eq!(later.status, 201, "{}", later.body);

    let stranger = json!({ "properties": {
        "roleDefinitionId": role_definition(OPENAI_USER),
        "principalId": "0badbad0-0000-4000-8000-000000000000"
    }});
    let unknown = arm
        .put(
            &path.replace(
                "33333333-3333-4333-8333-333333333333",
                "44444444-4444-4444-8444-444444444444",
            ),
            &stranger,
        )
        .await;
    assert_eq!(unknown.code(), "PrincipalNotFound");
}

#[tokio::test]
async fn deleting_a_group_is_an_lro_that_takes_its_contents_along() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("doomed").await;
    let assignment = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/55555555-5555-4555-8555-555555555555?api-version=2022-04-01",
        group_path("doomed")
    );
    let created = arm
        .put(
            &assignment,
            &json!({ "properties": {
                "roleDefinitionId": role_definition(OPENAI_USER),
                "principalId": user_id(&sandbox)
            }}),
        )
        .await;
    assert_eq!(created.status, 201);
    let path = format!("{}?api-version=2025-04-01", group_path("doomed"));
    let delete = arm.delete(&path).await;
    assert_eq!(delete.status, 202);
    let location = delete.header("location").unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "{}/subscriptions/{SUBSCRIPTION}/operationresults/",
            sandbox.base_url()
        )),
        "{location}"
    );
    assert_eq!(delete.header("retry-after-ms"), Some("1"));
    let done = arm.wait_location(&location).await;
    assert_eq!((done.status, &done.body), (200, &Value::Null));
    let gone = arm.get(&path).await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceGroupNotFound"));
    assert!(sandbox.state().arm.resources.is_empty());
    let again = arm.delete(&path).await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn poll_hints_follow_the_sandbox_clock_and_are_never_zero() {
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 10.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("slow").await;
    // A group delete takes 15 s of sandbox time: 1.5 s of wall time at scale 10.
    let delete = arm
        .delete(&format!("{}?api-version=2025-04-01", group_path("slow")))
        .await;
    assert_eq!(delete.header("retry-after"), Some("2"));
    let location = delete.header("location").unwrap().to_owned();
    sandbox.advance(SignedDuration::from_millis(900)).unwrap();
    let running = arm.get(&location).await;
    assert_eq!(running.status, 202);
    let hint = running
        .header("retry-after-ms")
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!((1..=700).contains(&hint), "{hint}");
    assert_eq!(running.header("retry-after"), None);
    sandbox
        .advance(SignedDuration::from_millis(hint as i64 + 20))
        .unwrap();
    assert_eq!(arm.get(&location).await.status, 200);
}

#[tokio::test]
async fn scripted_faults_reach_arm() {
    let script = FaultScript::parse(
        "faults.yaml",
        "faults:\n  - method: PUT\n    path: /subscriptions/*/resourcegroups/*\n    calls: [1]\n    status: 429\n    headers: { Retry-After: \"3\" }\n",
    )
    .unwrap();
    let sandbox = start(SandboxConfig {
        fault_script: Some(script),
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    let path = format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/rg?api-version=2025-04-01");
    let throttled = arm.put(&path, &json!({ "location": "westus" })).await;
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (429, Some("3"))
    );
    assert!(sandbox.state().arm.resources.is_empty());
    let created = arm.put(&path, &json!({ "location": "westus" })).await;
    assert_eq!(created.status, 201);
}

/// Under `hostile`, requests fail at random and one async operation in eight ends `Failed`; a
/// client that retries its requests still sees every operation end, some of them in failure.
#[tokio::test]
async fn hostile_operations_sometimes_fail_with_an_error() {
    use provision::sandbox::FaultProfile;
    let sandbox = start(SandboxConfig {
        faults: FaultProfile::Hostile,
        seed: 5,
        time_scale: 100.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    // Retries what the fault profile throws (429, 503, resets) until a real answer arrives.
    let send = async |method: &str, path: &str, body: Option<&Value>| {
        for _ in 0..50 {
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                arm.try_send(method, path, body, &[]),
            )
            .await;
            if let Ok(Some(answer)) = attempt
                && ![429, 503].contains(&answer.status)
            {
                return answer;
            }
        }
        panic!("{method} {path} never got through");
    };
    let (mut failed, mut succeeded) = (0, 0);
    for i in 0..24 {
        let path = format!("{}?api-version=2025-04-01", group_path(&format!("rg{i}")));
        let created = send("PUT", &path, Some(&json!({ "location": "westus" }))).await;
        assert!([200, 201].contains(&created.status), "{}", created.body);
        let delete = send("DELETE", &path, None).await;
        assert_eq!(delete.status, 202, "{}", delete.body);
        let location = delete.header("location").unwrap().to_owned();
        let end = loop {
            let answer = send("GET", &location, None).await;
            if answer.status != 202 {
                break answer;
            }
        };
        match end.status {
            200 => succeeded += 1,
            500 => {
                assert_eq!(end.code(), "InternalServerError");
                // A failed delete leaves the group in place.
                assert_eq!(send("GET", &path, None).await.status, 200);
                failed += 1;
            }
            other => panic!("unexpected final status {other}: {}", end.body),
        }
    }
    assert!(
        failed > 0 && succeeded > failed,
        "{failed} failed, {succeeded} succeeded"
    );
}
