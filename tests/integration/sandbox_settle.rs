//! Time passing in the sandbox is applied by whichever request comes first after the clock
//! moved, and every kind of request applies all of it: a purged account's managed identity
//! leaves the directory even when the first request after the purge is not an ARM one.

use provision::clock::SignedDuration;
use provision::sandbox::Sandbox;
use serde_json::json;

use crate::sandbox_support::{Arm, SUBSCRIPTION, client, default_sandbox, group_path, token};

const API: &str = "2025-06-01";

/// An account with a system-assigned identity, deleted (soft) and its purge asked for but not
/// polled: its identity's principal id.
async fn purged_account(sandbox: &Sandbox) -> String {
    let arm = Arm::new(sandbox);
    arm.group("rg").await;
    let account = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/llm",
        group_path("rg")
    );
    let body = json!({
        "location": "westus", "kind": "AIServices", "sku": { "name": "S0" },
        "identity": { "type": "SystemAssigned" },
        "properties": { "customSubDomainName": "llm-settle", "disableLocalAuth": true }
    });
    let put = arm
        .put(&format!("{account}?api-version={API}"), &body)
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    arm.wait_async(put.header("azure-asyncoperation").unwrap())
        .await;
    let principal =
        arm.get(&format!("{account}?api-version={API}")).await.body["identity"]["principalId"]
            .as_str()
            .unwrap()
            .to_owned();
    let deleted = arm.delete(&format!("{account}?api-version={API}")).await;
    assert_eq!(deleted.status, 202, "{}", deleted.body);
    arm.wait_location(deleted.header("location").unwrap()).await;
    // Soft-deleted, the account keeps its identity.
    assert_eq!(graph_status(sandbox, &principal).await, 200);
    let purge = arm
        .delete(&format!(
            "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/westus/resourceGroups/rg/deletedAccounts/llm?api-version={API}"
        ))
        .await;
    assert_eq!(purge.status, 202, "{}", purge.body);
    sandbox.advance(SignedDuration::from_secs(60)).unwrap();
    principal
}

async fn graph_status(sandbox: &Sandbox, principal: &str) -> u16 {
    client()
        .get(format!(
            "{}/v1.0/servicePrincipals/{principal}",
            sandbox.base_url()
        ))
        .bearer_auth(token(sandbox, 0, "https://graph.microsoft.com"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_graph_request_first_sees_the_purged_identity_gone() {
    let sandbox = default_sandbox().await;
    let principal = purged_account(&sandbox).await;
    assert_eq!(graph_status(&sandbox, &principal).await, 404);
}

#[tokio::test]
async fn an_inference_request_first_does_not_lose_the_purged_identity() {
    let sandbox = default_sandbox().await;
    let principal = purged_account(&sandbox).await;
    let inference = client()
        .post(format!(
            "{}/foundry/llm-settle/openai/deployments/chat/chat/completions?api-version=2024-10-21",
            sandbox.base_url()
        ))
        .bearer_auth(token(&sandbox, 0, "https://cognitiveservices.azure.com"))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(inference.status().as_u16(), 404, "the account is gone");
    assert_eq!(graph_status(&sandbox, &principal).await, 404);
    assert!(
        !sandbox
            .state()
            .objects
            .iter()
            .any(|o| o.id().eq_ignore_ascii_case(&principal))
    );
}
