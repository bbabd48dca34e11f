//! API Management in the sandbox, over HTTP: every official 2024-05-01 example replayed, then the
//! behaviours `provision` relies on (LROs, ETags, policy formats and validation, named values).
//!
//! Statuses of the examples the sandbox never answers, and why: none. Every listed status is
//! produced and checked below (ApiManagementDeleteApi's 202 by deleting an API, its 204 by
//! deleting it again; the Delete*Policy/NamedValue 200 and 204 the same way).

use provision::policy::{Document, canonical};
use provision::sandbox::{LatencyProfile, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::arm_fixtures::Example;
use crate::sandbox_support::{Answer, Arm, SUBSCRIPTION, default_sandbox, group_path, start};

const EXAMPLES: &str =
    "apimanagement/resource-manager/Microsoft.ApiManagement/stable/2024-05-01/examples";
const VERSION: &str = "2024-05-01";

fn example(name: &str) -> Example {
    Example::load(&format!("{EXAMPLES}/{name}.json"))
}

/// `…/service/{svc}{rest}?api-version=…` for a service in a group of the sandbox.
fn service_path(group: &str, service: &str, rest: &str) -> String {
    format!(
        "{}/providers/Microsoft.ApiManagement/service/{service}{rest}?api-version={VERSION}",
        group_path(group)
    )
}

/// The example's own resource path (its group and service), below the service.
fn example_path(example: &Example, rest: &str) -> String {
    service_path(
        example.str("resourceGroupName"),
        example.str("serviceName"),
        rest,
    )
}

fn service_body(name: &str) -> Value {
    json!({
        "location": "West Europe",
        "sku": { "name": "Developer", "capacity": 1 },
        "identity": { "type": "SystemAssigned" },
        "tags": { "managed-by": "provision" },
        "properties": { "publisherEmail": "ops@contoso.example", "publisherName": name }
    })
}

/// Creates a service and polls its create to the end.
async fn service(arm: &Arm, group: &str, name: &str) -> Answer {
    let created = arm
        .put(&service_path(group, name, ""), &service_body(name))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let done = arm
        .wait_location(created.header("location").expect("a Location"))
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    done
}

async fn api(arm: &Arm, group: &str, name: &str, api: &str) {
    let answer = arm
        .put(
            &service_path(group, name, &format!("/apis/{api}")),
            &json!({ "properties": { "displayName": api, "path": api, "protocols": ["https"] } }),
        )
        .await;
    assert!([200, 201].contains(&answer.status), "{}", answer.body);
}

async fn with_if_match(
    arm: &Arm,
    method: &str,
    path: &str,
    body: Option<&Value>,
    etag: &str,
) -> Answer {
    arm.send(method, path, body, &[("If-Match", etag)]).await
}

/// A sandbox with the examples' group and service ready.
async fn examples_sandbox() -> (Sandbox, Arm) {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg1").await;
    service(&arm, "rg1", "apimService1").await;
    (sandbox, arm)
}

#[tokio::test]
async fn service_examples_replay() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg1").await;

    let create = example("ApiManagementCreateServiceHavingMsi");
    let path = example_path(&create, "");
    let answer = arm.put(&path, &create.body()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    create.assert_matches(201, &answer.body);
    let location = answer.header("location").unwrap().to_owned();
    assert_eq!(answer.header("azure-asyncoperation"), None);
    assert!(location.contains("/service/apimService1/operationresults/"));
    assert!(location.ends_with("?api-version=2024-05-01&asyncResponse"));
    let done = arm.wait_location(&location).await;
    assert_eq!(done.status, 200);
    create.assert_matches(200, &done.body);
    let again = arm.put(&path, &create.body()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    create.assert_matches(200, &again.body);

    // The GET example's service, sent back as a PUT (what a client that round-trips does).
    let get = example("ApiManagementServiceGetService");
    let shown = &get.response(200)["body"];
    let mut properties = shown["properties"].clone();
    let custom: Vec<Value> = properties["hostnameConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["certificateSource"] == "Custom")
        .cloned()
        .collect();
    properties["hostnameConfigurations"] = json!(custom);
    properties["additionalLocations"] = json!([{
        "location": "East US 2",
        "sku": { "name": "Premium", "capacity": 1 }
    }]);
    let user_assigned: Value = shown["identity"]["userAssignedIdentities"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), json!({})))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let body = json!({
        "location": shown["location"],
        "sku": shown["sku"],
        "tags": shown["tags"],
        "identity": { "type": "SystemAssigned, UserAssigned", "userAssignedIdentities": user_assigned },
        "properties": properties,
    });
    let path = example_path(&get, "").replace("apimService1", "apimService2");
    let created = arm.put(&path, &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    arm.wait_location(created.header("location").unwrap()).await;
    let answer = arm.get(&path).await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);
    // The sandbox's gateway answers on its own origin (docs/sandbox.md, "The APIM gateway").
    assert_eq!(
        answer.body["properties"]["gatewayUrl"],
        format!("{}/apim/apimservice2", sandbox.base_url())
    );
}

#[tokio::test]
async fn api_examples_replay() {
    let (_sandbox, arm) = examples_sandbox().await;

    let create = example("ApiManagementCreateApi");
    let path = example_path(&create, &format!("/apis/{}", create.str("apiId")));
    for expected in [201, 200] {
        let answer = arm.put(&path, &create.body()).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        create.assert_matches(expected, &answer.body);
        let location = answer.header("location").unwrap();
        assert!(
            location.contains("/apis/tempgroup?api-version=2024-05-01&asyncId=")
                && location.ends_with(&format!("&asyncCode={expected}")),
            "{location}"
        );
        assert!(
            answer
                .header("azure-asyncoperation")
                .unwrap()
                .contains("/service/apimService1/tenant/operationResults/")
        );
    }

    let get = example("ApiManagementGetApiContract");
    let path = example_path(&get, &format!("/apis/{}", get.str("apiId")));
    let mut properties = get.response(200)["body"]["properties"].clone();
    properties["apiType"] = properties["type"].clone();
    let put = arm.put(&path, &json!({ "properties": properties })).await;
    assert_eq!(put.status, 201, "{}", put.body);
    let answer = arm.get(&path).await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);
    assert_eq!(answer.body["properties"]["type"], "soap");
    assert!(answer.header("etag").is_some());

    let delete = example("ApiManagementDeleteApi");
    let path = example_path(&delete, &format!("/apis/{}", delete.str("apiId")));
    api(&arm, "rg1", "apimService1", delete.str("apiId")).await;
    let answer = with_if_match(&arm, "DELETE", &path, None, delete.str("If-Match")).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    delete.assert_matches(202, &answer.body);
    let location = answer.header("location").unwrap();
    assert!(location.ends_with("&asyncCode=204"), "{location}");
    assert!(answer.header("azure-asyncoperation").is_some());
    let done = arm.wait_location(location).await;
    assert_eq!((done.status, &done.body), (204, &Value::Null));
    let again = with_if_match(&arm, "DELETE", &path, None, "*").await;
    assert_eq!(again.status, 204);
    delete.assert_matches(204, &again.body);
}

#[tokio::test]
async fn operation_backend_and_named_value_examples_replay() {
    let (_sandbox, arm) = examples_sandbox().await;

    let operation = example("ApiManagementCreateApiOperation");
    api(&arm, "rg1", "apimService1", operation.str("apiId")).await;
    let path = example_path(
        &operation,
        &format!(
            "/apis/{}/operations/{}",
            operation.str("apiId"),
            operation.str("operationId")
        ),
    );
    for expected in [201, 200] {
        let answer = arm.put(&path, &operation.body()).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        operation.assert_matches(expected, &answer.body);
        assert!(answer.header("etag").is_some());
    }

    let proxy = example("ApiManagementCreateBackendProxyBackend");
    let path = example_path(&proxy, &format!("/backends/{}", proxy.str("backendId")));
    for expected in [201, 200] {
        let answer = arm.put(&path, &proxy.body()).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        proxy.assert_matches(expected, &answer.body);
    }

    let get = example("ApiManagementGetBackend");
    let path = example_path(&get, &format!("/backends/{}", get.str("backendId")));
    let properties = get.response(200)["body"]["properties"].clone();
    assert_eq!(
        arm.put(&path, &json!({ "properties": properties }))
            .await
            .status,
        201
    );
    let answer = arm.get(&path).await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);

    let named = example("ApiManagementCreateNamedValue");
    let path = example_path(
        &named,
        &format!("/namedValues/{}", named.str("namedValueId")),
    );
    for expected in [201, 200] {
        let answer = arm.put(&path, &named.body()).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        named.assert_matches(expected, &answer.body);
        assert!(
            answer
                .header("location")
                .unwrap()
                .ends_with(&format!("&asyncCode={expected}"))
        );
        assert!(answer.header("azure-asyncoperation").is_some());
    }

    let delete = example("ApiManagementDeleteNamedValue");
    let path = example_path(
        &delete,
        &format!("/namedValues/{}", delete.str("namedValueId")),
    );
    for expected in [200, 204] {
        let answer = with_if_match(&arm, "DELETE", &path, None, delete.str("If-Match")).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        delete.assert_matches(expected, &answer.body);
    }
}

#[tokio::test]
async fn policy_examples_replay() {
    let (_sandbox, arm) = examples_sandbox().await;
    let policy_path = |example: &Example| {
        example_path(
            example,
            &format!(
                "/apis/{}/policies/{}",
                example.str("apiId"),
                example.str("policyId")
            ),
        )
    };

    let create = example("ApiManagementCreateApiPolicy");
    api(&arm, "rg1", "apimService1", create.str("apiId")).await;
    let path = policy_path(&create);
    for expected in [201, 200] {
        let answer = with_if_match(
            &arm,
            "PUT",
            &path,
            Some(&create.body()),
            create.str("If-Match"),
        )
        .await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        create.assert_matches(expected, &answer.body);
        assert_eq!(
            answer.body["properties"]["value"],
            create.response(expected)["body"]["properties"]["value"]
        );
    }

    let raw = example("ApiManagementCreateApiPolicyNonXmlEncoded");
    let path = policy_path(&raw);
    assert_eq!(
        with_if_match(&arm, "DELETE", &path, None, "*").await.status,
        200
    );
    for expected in [201, 200] {
        let answer =
            with_if_match(&arm, "PUT", &path, Some(&raw.body()), raw.str("If-Match")).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        raw.assert_matches(expected, &answer.body);
        assert_eq!(
            answer.body["properties"]["value"],
            raw.response(expected)["body"]["properties"]["value"]
        );
    }

    // The GET example's document (an XML-encoded one), stored and read back: the same text but
    // its leading comment, which APIM keeps and the sandbox drops.
    let get = example("ApiManagementGetApiPolicy");
    api(&arm, "rg1", "apimService1", get.str("apiId")).await;
    let path = policy_path(&get);
    let shown = get.response(200)["body"]["properties"]["value"]
        .as_str()
        .unwrap();
    let put = arm
        .put(
            &path,
            &json!({ "properties": { "format": "xml", "value": shown } }),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let answer = arm.get(&path).await;
    assert_eq!(answer.status, 200);
    get.assert_matches(200, &answer.body);
    let without_comment = &shown[shown.find("-->\r\n").unwrap() + 5..];
    assert_eq!(answer.body["properties"]["value"], without_comment);

    let delete = example("ApiManagementDeleteApiPolicy");
    api(&arm, "rg1", "apimService1", delete.str("apiId")).await;
    let path = policy_path(&delete);
    arm.put(&path, &create.body()).await;
    for expected in [200, 204] {
        let answer = with_if_match(&arm, "DELETE", &path, None, delete.str("If-Match")).await;
        assert_eq!(answer.status, expected, "{}", answer.body);
        delete.assert_matches(expected, &answer.body);
    }
}

#[tokio::test]
async fn a_new_service_activates_with_a_registered_principal() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let done = service(&arm, "rg", "apim-llm").await;
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(done.body["properties"]["targetProvisioningState"], "");
    let principal = done.body["identity"]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = done.body["id"].as_str().unwrap().to_owned();
    {
        let state = sandbox.state();
        let sp = state
            .objects
            .iter()
            .find(|o| o.id() == principal)
            .expect("the identity's service principal is in the directory");
        assert_eq!(sp.str("servicePrincipalType"), Some("ManagedIdentity"));
        assert_eq!(sp.str("displayName"), Some("apim-llm"));
        assert_eq!(sp.body["alternativeNames"][1], json!(id));
    }

    let path = service_path("rg", "apim-llm", "");
    let got = arm.get(&path).await;
    assert_eq!(got.status, 200);
    let etag = got.body["etag"].as_str().unwrap();
    assert_eq!(got.header("etag"), Some(format!("\"{etag}\"").as_str()));
    assert_eq!(
        got.body["properties"]["gatewayUrl"],
        format!("{}/apim/apim-llm", sandbox.base_url())
    );
    assert_eq!(got.body["location"], "West Europe");

    let tagged = arm
        .send(
            "PATCH",
            &path,
            Some(&json!({ "tags": { "env": "demo" } })),
            &[],
        )
        .await;
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    assert_eq!(tagged.body["tags"], json!({ "env": "demo" }));
    assert_eq!(tagged.body["identity"]["principalId"], json!(principal));
    assert_ne!(tagged.body["etag"], got.body["etag"]);
    let again = arm.put(&path, &service_body("apim-llm")).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["identity"]["principalId"], json!(principal));

    let off = arm
        .send(
            "PATCH",
            &path,
            Some(&json!({ "identity": { "type": "None" } })),
            &[],
        )
        .await;
    assert_eq!(off.body["identity"], json!({ "type": "None" }));
    assert!(!sandbox.state().objects.iter().any(|o| o.id() == principal));
    let on = arm
        .send(
            "PATCH",
            &path,
            Some(&json!({ "identity": { "type": "SystemAssigned" } })),
            &[],
        )
        .await;
    let fresh = on.body["identity"]["principalId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, principal);
    assert!(sandbox.state().objects.iter().any(|o| o.id() == fresh));

    api(&arm, "rg", "apim-llm", "llm").await;
    let deleted = arm.delete(&path).await;
    assert_eq!(deleted.status, 200);
    assert!(!sandbox.state().objects.iter().any(|o| o.id() == fresh));
    let gone = arm.get(&service_path("rg", "apim-llm", "/apis/llm")).await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceNotFound"));
    assert!(
        gone.message()
            .contains("'Microsoft.ApiManagement/service/apim-llm'")
    );
    assert_eq!(arm.delete(&path).await.status, 204);
    assert!(
        sandbox
            .state()
            .arm
            .resources
            .keys()
            .all(|k| !k.contains("apim-llm"))
    );
}

#[tokio::test]
async fn service_writes_are_validated() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let mut body = service_body("x");
    body["properties"] = json!({ "publisherName": "x" });
    let answer = arm.put(&service_path("rg", "apim", ""), &body).await;
    assert_eq!((answer.status, answer.code()), (400, "ValidationError"));
    assert_eq!(
        answer.body["error"]["details"][0]["target"],
        "publisherEmail"
    );
    let bad = arm
        .put(&service_path("rg", "1apim", ""), &service_body("x"))
        .await;
    assert_eq!((bad.status, bad.code()), (400, "InvalidResourceName"));
    let missing = arm.get(&service_path("rg", "nope", "")).await;
    assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"));
    assert_eq!(missing.header("x-ms-failure-cause"), Some("gateway"));

    // The gateway host is a global DNS name: a second group cannot take the name.
    service(&arm, "rg", "apim-taken").await;
    arm.group("rg2").await;
    let clash = arm
        .put(&service_path("rg2", "APIM-taken", ""), &service_body("x"))
        .await;
    assert_eq!((clash.status, clash.code()), (409, "ServiceAlreadyExists"));
    let check = arm
        .send(
            "POST",
            &format!(
                "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ApiManagement/checkNameAvailability?api-version={VERSION}"
            ),
            Some(&json!({ "name": "apim-taken" })),
            &[],
        )
        .await;
    assert_eq!(
        (
            check.status,
            &check.body["nameAvailable"],
            &check.body["reason"]
        ),
        (200, &json!(false), &json!("AlreadyExists"))
    );
    let listed = arm
        .get(&format!(
            "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ApiManagement/service?api-version={VERSION}"
        ))
        .await;
    assert_eq!(listed.body["value"][0]["name"], "apim-taken");
}

#[tokio::test]
async fn an_activating_service_is_locked() {
    let sandbox = start(SandboxConfig {
        apim_create_ms: Some(600_000),
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let path = service_path("rg", "apim-slow", "");
    let created = arm.put(&path, &service_body("apim-slow")).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["properties"]["provisioningState"], "Created");
    assert_eq!(
        created.body["properties"]["targetProvisioningState"],
        "Activating"
    );
    assert_eq!(created.header("retry-after"), Some("60"));
    let poll = arm.get(created.header("location").unwrap()).await;
    assert_eq!((poll.status, &poll.body), (202, &Value::Null));
    assert_eq!(poll.header("retry-after"), Some("60"));

    let child = arm
        .put(
            &service_path("rg", "apim-slow", "/namedValues/tenant-id"),
            &json!({ "properties": { "displayName": "tenant-id", "value": "t" } }),
        )
        .await;
    assert_eq!((child.status, child.code()), (409, "ServiceLocked"));
    assert_eq!(
        child.message(),
        "The API Service apim-slow is transitioning at this time. Please try the request again later."
    );
    let update = arm.put(&path, &service_body("apim-slow")).await;
    assert_eq!((update.status, update.code()), (409, "ServiceLocked"));
}

#[tokio::test]
async fn api_writes_are_polled_both_ways() {
    let (_sandbox, arm) = examples_sandbox().await;
    let path = service_path("rg1", "apimService1", "/apis/llm");
    let body =
        json!({ "properties": { "displayName": "LLM", "path": "llm", "protocols": ["https"] } });
    let created = arm.put(&path, &body).await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body["properties"]["provisioningState"],
        "InProgress"
    );
    let status = arm
        .wait_async(created.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(
        (status.status, &status.body["status"]),
        (200, &json!("Succeeded"))
    );
    let final_answer = arm.wait_location(created.header("location").unwrap()).await;
    assert_eq!(final_answer.status, 201);
    assert_eq!(
        final_answer.body["properties"]["provisioningState"],
        "Succeeded"
    );

    let got = arm.get(&path).await;
    assert_eq!(got.status, 200);
    assert!(got.header("etag").is_some());
    assert!(got.body.get("etag").is_none());
    assert_eq!(got.body["properties"]["subscriptionRequired"], true);
    assert_eq!(got.body["properties"]["type"], "http");
    let head = arm.send("HEAD", &path, None, &[]).await;
    assert_eq!(
        (head.status, head.header("etag")),
        (200, got.header("etag"))
    );

    let list = arm.get(&service_path("rg1", "apimService1", "/apis")).await;
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["value"][0]["name"], "llm");

    let no_path = arm
        .put(&path, &json!({ "properties": { "displayName": "LLM" } }))
        .await;
    assert_eq!((no_path.status, no_path.code()), (400, "ValidationError"));
    assert_eq!(no_path.body["error"]["details"][0]["target"], "path");
    let missing = arm
        .get(&service_path(
            "rg1",
            "apimService1",
            "/apis/nope/operations/x",
        ))
        .await;
    assert_eq!((missing.status, missing.message()), (404, "Api not found."));
}

#[tokio::test]
async fn if_match_guards_patch_and_delete() {
    let (_sandbox, arm) = examples_sandbox().await;
    api(&arm, "rg1", "apimService1", "llm").await;
    let path = service_path("rg1", "apimService1", "/apis/llm");
    let etag = arm.get(&path).await.header("etag").unwrap().to_owned();
    let patch = json!({ "properties": { "displayName": "Renamed" } });

    let unconditional = arm.send("PATCH", &path, Some(&patch), &[]).await;
    assert_eq!(
        (unconditional.status, unconditional.code()),
        (400, "InvalidParameters")
    );
    let stale = with_if_match(&arm, "PATCH", &path, Some(&patch), "\"AAAAAAAAAAa=\"").await;
    assert_eq!((stale.status, stale.code()), (412, "PreconditionFailed"));
    let patched = with_if_match(&arm, "PATCH", &path, Some(&patch), &etag).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["properties"]["displayName"], "Renamed");
    assert_eq!(patched.body["properties"]["path"], "llm");
    let new_etag = patched.header("etag").unwrap();
    assert_ne!(new_etag, etag);

    let undeleted = arm.delete(&path).await;
    assert_eq!(
        (undeleted.status, undeleted.code()),
        (400, "InvalidParameters")
    );
    let stale = with_if_match(&arm, "DELETE", &path, None, &etag).await;
    assert_eq!(stale.status, 412);
    let deleted = with_if_match(&arm, "DELETE", &path, None, new_etag).await;
    assert_eq!(deleted.status, 202);
    arm.wait_location(deleted.header("location").unwrap()).await;
    assert_eq!(arm.get(&path).await.status, 404);
    for absent in [
        "/apis/llm",
        "/backends/none",
        "/namedValues/none",
        "/apis/x/policies/policy",
    ] {
        let answer = with_if_match(
            &arm,
            "DELETE",
            &service_path("rg1", "apimService1", absent),
            None,
            "*",
        )
        .await;
        let expected = if absent.starts_with("/apis/x/") {
            404
        } else {
            204
        };
        assert_eq!(answer.status, expected, "{absent}: {}", answer.body);
    }
}

#[tokio::test]
async fn rawxml_policies_round_trip_by_meaning() {
    let (_sandbox, arm) = examples_sandbox().await;
    api(&arm, "rg1", "apimService1", "llm").await;
    let path = service_path("rg1", "apimService1", "/apis/llm/policies/policy");
    let raw = r#"<policies>
  <inbound>
    <base />
    <set-variable name="caller" value="@(context.Request.Headers.GetValueOrDefault("x-caller", "") != "")" />
    <set-header name="x-note" exists-action="override"><value>@((bool)context.Variables["caller"] ? "a" : "b")</value></set-header>
  </inbound>
</policies>"#;
    let put = arm
        .put(
            &path,
            &json!({ "properties": { "format": "rawxml", "value": raw } }),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    assert!(put.header("etag").is_some());
    let encoded = put.body["properties"]["value"].as_str().unwrap();
    assert!(encoded.contains("&quot;x-caller&quot;"), "{encoded}");
    assert!(encoded.contains("\r\n    <set-variable"), "{encoded}");
    assert!(put.body["properties"].get("format").is_none());

    let sent = canonical(&Document::parse(raw).unwrap());
    let as_raw = arm.get(&format!("{path}&format=rawxml")).await;
    assert_eq!(as_raw.status, 200);
    let raw_back = as_raw.body["properties"]["value"].as_str().unwrap();
    assert!(
        raw_back.contains(
            r#"value="@(context.Request.Headers.GetValueOrDefault("x-caller", "") != "")""#
        )
    );
    assert_eq!(canonical(&Document::parse(raw_back).unwrap()), sent);
    let as_xml = arm.get(&path).await;
    assert_eq!(as_xml.body["properties"]["value"], json!(encoded));
    assert_eq!(canonical(&Document::parse(encoded).unwrap()), sent);

    // The same text as `xml` is not XML: the raw quotes end the attribute early.
    let strict = arm
        .put(
            &path,
            &json!({ "properties": { "format": "xml", "value": raw } }),
        )
        .await;
    assert_eq!((strict.status, strict.code()), (400, "ValidationError"));
    let other = arm
        .put(
            &service_path("rg1", "apimService1", "/apis/llm/policies/custom"),
            &json!({ "properties": { "value": "<policies />" } }),
        )
        .await;
    assert_eq!(other.status, 400);
}

#[tokio::test]
async fn broken_policies_are_refused_with_their_position() {
    let (_sandbox, arm) = examples_sandbox().await;
    api(&arm, "rg1", "apimService1", "llm").await;
    let path = service_path("rg1", "apimService1", "/apis/llm/policies/policy");
    let broken = "<policies>\r\n  <inbound>\r\n    <set-header name=\"a\" exists-action=override />\r\n  </inbound>\r\n</policies>";
    let answer = arm
        .put(&path, &json!({ "properties": { "value": broken } }))
        .await;
    assert_eq!((answer.status, answer.code()), (400, "ValidationError"));
    assert_eq!(
        answer.message(),
        "One or more fields contain incorrect values:"
    );
    let detail = &answer.body["error"]["details"][0];
    assert_eq!(detail["target"], "set-header");
    assert!(
        detail["message"]
            .as_str()
            .unwrap()
            .starts_with("Error in element 'set-header' on line 3, column 5: "),
        "{detail}"
    );
    let unclosed = arm
        .put(
            &path,
            &json!({ "properties": { "value": "<policies>\n  <inbound>\n</policies>" } }),
        )
        .await;
    assert_eq!(unclosed.status, 400);
    assert!(
        unclosed.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{}",
        unclosed.body
    );
    assert_eq!(arm.get(&path).await.status, 404);
}

#[tokio::test]
async fn policies_need_their_named_values() {
    let (_sandbox, arm) = examples_sandbox().await;
    api(&arm, "rg1", "apimService1", "llm").await;
    let path = service_path("rg1", "apimService1", "/apis/llm/policies/policy");
    let policy = json!({ "properties": { "format": "rawxml", "value":
        "<policies>\n  <inbound>\n    <validate-azure-ad-token tenant-id=\"{{tenant-id}}\" />\n  </inbound>\n</policies>" } });
    let refused = arm.put(&path, &policy).await;
    assert_eq!((refused.status, refused.code()), (400, "ValidationError"));
    assert_eq!(
        refused.body["error"]["details"][0]["message"],
        "Error in element 'validate-azure-ad-token' on line 3, column 5: Property 'tenant-id' not found."
    );
    let named = arm
        .put(
            &service_path("rg1", "apimService1", "/namedValues/entra-tenant"),
            &json!({ "properties": { "displayName": "tenant-id", "value": "7f0c0000-0000-4000-8000-000000000000" } }),
        )
        .await;
    assert_eq!(named.status, 201);
    assert_eq!(arm.put(&path, &policy).await.status, 201);
}

#[tokio::test]
async fn secret_named_values_are_only_listed_on_request() {
    let (_sandbox, arm) = examples_sandbox().await;
    let path = service_path("rg1", "apimService1", "/namedValues/backend-key");
    let put = arm
        .put(&path, &json!({ "properties": { "displayName": "backend-key", "value": "s3cr3t", "secret": true } }))
        .await;
    assert_eq!(put.status, 201);
    assert!(
        put.body["properties"].get("value").is_none(),
        "{}",
        put.body
    );
    let done = arm.wait_location(put.header("location").unwrap()).await;
    assert_eq!(done.status, 201);
    assert!(done.body["properties"].get("value").is_none());
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    let got = arm.get(&path).await;
    assert_eq!(got.body["properties"]["secret"], true);
    assert!(got.body["properties"].get("value").is_none());
    let list = arm
        .get(&service_path("rg1", "apimService1", "/namedValues"))
        .await;
    assert!(list.body["value"][0]["properties"].get("value").is_none());
    assert!(!list.body.to_string().contains("s3cr3t"));

    let listed = arm
        .send(
            "POST",
            &service_path("rg1", "apimService1", "/namedValues/backend-key/listValue"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (listed.status, &listed.body),
        (200, &json!({ "value": "s3cr3t" }))
    );
    assert!(listed.header("etag").is_some());

    let duplicate = arm
        .put(
            &service_path("rg1", "apimService1", "/namedValues/other"),
            &json!({ "properties": { "displayName": "backend-key", "value": "x" } }),
        )
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (400, "ValidationError")
    );
    assert_eq!(duplicate.body["error"]["details"][0]["target"], "name");
    let blank = arm
        .put(
            &service_path("rg1", "apimService1", "/namedValues/blank"),
            &json!({ "properties": { "displayName": "blank", "value": "  " } }),
        )
        .await;
    assert_eq!(blank.status, 400);
}

#[tokio::test]
async fn operations_declare_their_template_parameters() {
    let (_sandbox, arm) = examples_sandbox().await;
    api(&arm, "rg1", "apimService1", "llm").await;
    let path = service_path("rg1", "apimService1", "/apis/llm/operations/chat");
    let mut body = json!({ "properties": {
        "displayName": "Chat", "method": "POST",
        "urlTemplate": "/deployments/{deployment-id}/chat/completions",
        "templateParameters": []
    } });
    let refused = arm.put(&path, &body).await;
    assert_eq!((refused.status, refused.code()), (400, "ValidationError"));
    assert_eq!(
        refused.body["error"]["details"][0]["target"],
        "templateParameters"
    );
    assert!(
        refused.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'deployment-id'")
    );
    body["properties"]["templateParameters"] =
        json!([{ "name": "deployment-id", "type": "string", "required": true }]);
    let created = arm.put(&path, &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = arm
        .get(&service_path("rg1", "apimService1", "/apis/llm/operations"))
        .await;
    assert_eq!(
        listed.body["value"][0]["properties"]["urlTemplate"],
        body["properties"]["urlTemplate"]
    );
    let no_method = arm
        .put(
            &path,
            &json!({ "properties": { "displayName": "x", "urlTemplate": "/x" } }),
        )
        .await;
    assert_eq!(no_method.body["error"]["details"][0]["target"], "method");
    let backend = arm
        .put(
            &service_path("rg1", "apimService1", "/backends/foundry"),
            &json!({ "properties": { "url": "https://x.openai.azure.com/openai" } }),
        )
        .await;
    assert_eq!(backend.body["error"]["details"][0]["target"], "protocol");
}

#[tokio::test]
async fn realistic_latency_hints_every_poll() {
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 1000.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let hinted = |answer: &Answer| {
        assert_ne!(answer.header("retry-after"), Some("0"));
        answer.header("retry-after").is_some() || answer.header("retry-after-ms").is_some()
    };
    let created = arm
        .put(&service_path("rg", "apim", ""), &service_body("apim"))
        .await;
    assert_eq!(created.status, 201);
    assert!(hinted(&created));
    let location = created.header("location").unwrap().to_owned();
    let mut running = 0;
    loop {
        let poll = arm.get(&location).await;
        if poll.status != 202 {
            assert_eq!(poll.status, 200);
            break;
        }
        running += 1;
        assert!(hinted(&poll));
        sandbox
            .advance(provision::clock::SignedDuration::from_millis(5))
            .unwrap();
    }
    assert!(running > 0, "a 60 ms create is seen running at least once");

    let api = arm
        .put(
            &service_path("rg", "apim", "/apis/llm"),
            &json!({ "properties": { "displayName": "LLM", "path": "llm" } }),
        )
        .await;
    assert_eq!(api.status, 201);
    assert!(hinted(&api));
    let status = arm.get(api.header("azure-asyncoperation").unwrap()).await;
    if status.body["status"] == "InProgress" {
        assert!(hinted(&status));
    }
    let done = arm
        .wait_async(api.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done.body["status"], "Succeeded");
    let location = arm.wait_location(api.header("location").unwrap()).await;
    assert_eq!(location.status, 201);
}
