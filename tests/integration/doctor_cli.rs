//! `provision doctor` and `up`'s preflight: the real binary against sandbox setups that fail
//! each check, each with its exact message and hint, and a clean sandbox that passes; and the
//! sandbox's side of it (providers, permissions, unknown types).

use provision::sandbox::Sandbox;
use serde_json::{Value, json};

use crate::project::Project;
use crate::sandbox_support::{Arm, SUBSCRIPTION, default_sandbox, group_path};

const SUB: &str = "/subscriptions/5a4d0000-0000-4000-8000-0000000000b1";
const GROUP: &str = "rg-llm-gateway-local";
const ACCOUNT: &str = "llmgw-foundry-local";

struct World {
    sandbox: Sandbox,
    project: Project,
    local: String,
}

impl World {
    async fn new() -> World {
        let sandbox = default_sandbox().await;
        let project = Project::new();
        let local = project.read("environments/local.yaml").replace(
            "address: 127.0.0.1:7171",
            &format!("address: {}", sandbox.addr()),
        );
        project.write("environments/local.yaml", &local);
        World {
            sandbox,
            project,
            local,
        }
    }

    /// Deploys `model` with `capacity` instead of the shipped deployment.
    fn deploy(&self, model: &str, capacity: u32) {
        let local = self.local.replace(
            "foundry:\n  account: llmgw-foundry-local\n",
            &format!(
                "foundry:\n  account: llmgw-foundry-local\n  deployments:\n    - name: chat\n      \
                 model: {{ name: {model}, version: \"2026-07-09\" }}\n      sku: {{ name: \
                 GlobalStandard, capacity: {capacity} }}\n"
            ),
        );
        self.project.write("environments/local.yaml", &local);
    }

    async fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn doctor(&self) -> (Option<i32>, String, String) {
        self.run(&["doctor", "--env", "local", "--color", "never"])
            .await
    }

    /// Requests other than reads, sign-ins and the name checks since the `from`th.
    fn writes(&self, from: usize) -> Vec<String> {
        self.sandbox.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
            .filter(|r| !r.path.contains("/check"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn operator(&self) -> String {
        self.sandbox.state().operator.object_id.clone()
    }
}

/// The one line of `stdout` about `check` (with its hint line, when it has one).
fn line_of(stdout: &str, check: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l[8..].starts_with(&format!("{check}: ")))
        .unwrap_or_else(|| panic!("no {check} line in\n{stdout}"));
    let mut text = lines[at].to_owned();
    if let Some(hint) = lines
        .get(at + 1)
        .filter(|l| l.starts_with("        hint: "))
    {
        text.push('\n');
        text.push_str(hint);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_sandbox_passes_every_check_reading_only() {
    let world = World::new().await;
    let from = world.sandbox.requests().len();
    let (code, stdout, stderr) = world.doctor().await;
    assert_eq!(code, Some(0), "{stderr}");
    let operator = world.operator();
    assert_eq!(
        stdout,
        format!(
            "ok      identity: signed in with sandbox client credentials as {operator} in tenant \
             5a4d0000-0000-4000-8000-0000000000b0; subscription Sandbox ({SUBSCRIPTION}, Enabled)\n\
             ok      provider: Microsoft.ApiManagement is registered in subscription {SUBSCRIPTION}\n\
             ok      provider: Microsoft.CognitiveServices is registered in subscription {SUBSCRIPTION}\n\
             ok      permissions: the identity may do all 8 writes `up` needs at {SUB}\n\
             ok      model: deployment gpt-5.6-luna: model gpt-5.6-luna version 2026-07-09 is \
             offered as GlobalStandard in swedencentral\n\
             ok      quota: deployment gpt-5.6-luna: quota OpenAI.GlobalStandard.gpt-5.6-luna in \
             swedencentral: limit 1000, 0 in use, 1000 free; 10 asked\n\
             ok      foundry-name: subdomain {ACCOUNT} is available\n\
             ok      apim-name: API Management name apim-llmgw-local is available\n\
             ok      graph: the identity may create and change every app registration (Graph \
             Application.ReadWrite.All)\n\
             local: 9 passed, 0 warning(s), 0 failed\n"
        )
    );
    assert_eq!(world.writes(from), Vec::<String>::new());
    // Sent concurrently: in either order.
    let mut checks: Vec<String> = world.sandbox.requests()[from..]
        .iter()
        .filter(|r| r.path.contains("/check"))
        .map(|r| format!("{} {}", r.method, r.path.split('?').next().unwrap()))
        .collect();
    checks.sort();
    assert_eq!(
        checks,
        [
            format!("POST {SUB}/providers/Microsoft.ApiManagement/checkNameAvailability"),
            format!("POST {SUB}/providers/Microsoft.CognitiveServices/checkDomainAvailability"),
        ]
    );

    // The same as JSON lines, each fitting the schema.
    let (code, stdout, _) = world
        .run(&["doctor", "--env", "local", "--output", "json"])
        .await;
    assert_eq!(code, Some(0));
    let lines = crate::output_contract::lines(&stdout);
    assert_eq!(lines.len(), 10);
    assert_eq!(
        lines[3],
        json!({"type": "check", "env": "local", "check": "permissions", "status": "pass",
               "message": format!("the identity may do all 8 writes `up` needs at {SUB}"),
               "hint": null})
    );
    assert_eq!(
        lines[9],
        json!({"type": "summary", "env": "local", "passed": 9, "warnings": 0, "failed": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_may_not_write_role_assignments_fails_and_a_granted_one_passes() {
    let world = World::new().await;
    world.sandbox.state().arm.operator_role = Some("Contributor".to_owned());
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "permissions"),
        format!(
            "error   permissions: the identity may not \
             Microsoft.Authorization/roleAssignments/write at {SUB}: `up` would fail there after \
             creating what comes before\n        hint: ask for Role Based Access Control \
             Administrator (or Owner) on {SUB}: `az role assignment create --assignee <object id> \
             --role \"<role>\" --scope {SUB}`"
        )
    );
    let (code, json_out, _) = world
        .run(&["doctor", "--env", "local", "--output", "json"])
        .await;
    assert_eq!(code, Some(1));
    let lines = crate::output_contract::lines(&json_out);
    assert_eq!(lines[3]["status"], "fail");
    assert_eq!(
        lines[3]["hint"],
        format!(
            "ask for Role Based Access Control Administrator (or Owner) on {SUB}: `az role \
             assignment create --assignee <object id> --role \"<role>\" --scope {SUB}`"
        )
    );
    assert!(
        stdout.ends_with("local: 8 passed, 0 warning(s), 1 failed\n"),
        "{stdout}"
    );

    // The other side: a role assignment for the caller adds the right. An Owner grants it: the
    // sandbox authorizes role assignment writes, so the Contributor cannot grant it to itself.
    let arm = Arm::new(&world.sandbox);
    world.sandbox.state().arm.operator_role = None;
    let assignment = format!(
        "{SUB}/providers/Microsoft.Authorization/roleAssignments/\
         0d0c0000-0000-4000-8000-000000000001?api-version=2022-04-01"
    );
    let body = json!({"properties": {
        "roleDefinitionId": format!("{SUB}/providers/Microsoft.Authorization/roleDefinitions/f58310d9-a9f6-439a-9e8d-f62e7b41a168"),
        "principalId": world.operator(),
        "principalType": "ServicePrincipal"}});
    assert_eq!(arm.put(&assignment, &body).await.status, 201);
    world.sandbox.state().arm.operator_role = Some("Contributor".to_owned());
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(
        line_of(&stdout, "permissions"),
        format!("ok      permissions: the identity may do all 8 writes `up` needs at {SUB}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_location_does_not_offer_fails() {
    let world = World::new().await;
    world.deploy("gpt-nowhere", 1);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "model"),
        "error   model: deployment chat: model gpt-nowhere (OpenAI) is not offered in \
         swedencentral\n        hint: run `provision models --env <env>` to see what the \
         location offers"
    );
    assert!(!stdout.contains("quota:"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_smaller_than_the_capacity_fails_with_the_numbers() {
    let world = World::new().await;
    world.deploy("gpt-5.6-luna", 1001);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "quota"),
        "error   quota: deployment chat: quota OpenAI.GlobalStandard.gpt-5.6-luna in \
         swedencentral: limit 1000, 0 in use, 1000 free; 1001 asked\n        hint: lower \
         `sku.capacity` to 1000 or less, free capacity held by other deployments, or request \
         more quota (https://aka.ms/oai/quotaincrease)"
    );
    // The other side: all of what is left is enough.
    world.deploy("gpt-5.6-luna", 1000);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(0), "{stdout}");
}

fn account(subdomain: &str) -> Value {
    json!({"location": "swedencentral", "kind": "AIServices", "sku": {"name": "S0"},
           "properties": {"customSubDomainName": subdomain}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdomain_taken_by_someone_else_fails() {
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);
    arm.group("someone-else").await;
    let path = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/theirs?api-version=2025-06-01",
        group_path("someone-else")
    );
    let put = arm.put(&path, &account(ACCOUNT)).await;
    assert!(put.status < 300, "{}", put.body);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "foundry-name"),
        format!(
            "error   foundry-name: the Foundry custom subdomain {ACCOUNT} is taken: Sub domain \
             name '{ACCOUNT}' is already used by a resource, or by a soft-deleted one that has \
             not been purged.\n        hint: set `foundry.account` to another name: it is the \
             subdomain <name>.openai.azure.com, unique across all of Azure"
        )
    );

    // The same for the API Management service name, held by a service in another group.
    let path = format!(
        "{}/providers/Microsoft.ApiManagement/service/apim-llmgw-local?api-version=2024-05-01",
        group_path("someone-else")
    );
    let service = json!({"location": "swedencentral", "sku": {"name": "Developer", "capacity": 1},
        "properties": {"publisherEmail": "a@example.com", "publisherName": "them"}});
    let put = arm.put(&path, &service).await;
    assert!(put.status < 300, "{}", put.body);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "apim-name"),
        "error   apim-name: the API Management service name apim-llmgw-local is taken: \
         apim-llmgw-local is already in use. Please select a different name.\n        hint: set \
         `apim.create.name` to another name: it is the host <name>.azure-api.net, unique across \
         all of Azure"
    );
    assert!(
        stdout.ends_with("local: 7 passed, 0 warning(s), 2 failed\n"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_deleted_account_holding_the_name_fails_with_purge_and_recover() {
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);
    arm.group(GROUP).await;
    let path = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}?api-version=2025-06-01",
        group_path(GROUP)
    );
    let put = arm.put(&path, &account(ACCOUNT)).await;
    assert!(put.status < 300, "{}", put.body);
    let deleted = arm.delete(&path).await;
    assert!(deleted.status < 300, "{}", deleted.body);
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    let line = line_of(&stdout, "foundry-name");
    let (message, hint) = line.split_once('\n').unwrap();
    assert!(
        message.starts_with(&format!("error   foundry-name: {ACCOUNT} was deleted on ")),
        "{message}"
    );
    assert!(
        message.ends_with(
            " and is soft-deleted: Azure keeps its name for 48 hours, and creating it again fails \
             with FlagMustBeSetForRestore"
        ),
        "{message}"
    );
    assert_eq!(
        hint,
        format!(
            "        hint: purge it to free the name (`az cognitiveservices account purge --name \
             {ACCOUNT} --resource-group {GROUP} --location swedencentral`), or restore it (`az \
             cognitiveservices account recover --name {ACCOUNT} --resource-group {GROUP} \
             --location swedencentral`) and run again"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_provider_fails_with_the_register_command() {
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);
    let unregister = arm
        .send(
            "POST",
            &format!("{SUB}/providers/Microsoft.ApiManagement/unregister?api-version=2025-04-01"),
            None,
            &[],
        )
        .await;
    assert_eq!(unregister.status, 200, "{}", unregister.body);
    assert_eq!(unregister.body["registrationState"], "NotRegistered");
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "provider"),
        format!(
            "error   provider: resource provider Microsoft.ApiManagement is NotRegistered in \
             subscription {SUBSCRIPTION}\n        hint: register it (once per subscription, takes \
             a minute or two): `az provider register --namespace Microsoft.ApiManagement \
             --subscription {SUBSCRIPTION} --wait`"
        )
    );

    // `up` stops on it before writing anything; skipped, it fails where Azure would.
    let from = world.sandbox.requests().len();
    let (code, _, stderr) = world.run(&["up", "--env", "local", "--yes"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: preflight: resource provider Microsoft.ApiManagement is NotRegistered in \
             subscription {SUBSCRIPTION}\nhint: register it (once per subscription, takes a \
             minute or two): `az provider register --namespace Microsoft.ApiManagement \
             --subscription {SUBSCRIPTION} --wait`; `provision doctor` shows every check (`up \
             --skip-preflight` skips them)\n"
        )
    );
    assert_eq!(world.writes(from), Vec::<String>::new());
    let (code, _, stderr) = world
        .run(&["up", "--env", "local", "--yes", "--skip-preflight"])
        .await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("MissingSubscriptionRegistration"),
        "{stderr}"
    );
    assert!(!world.writes(from).is_empty());

    // Registered again, the check passes.
    let register = arm
        .send(
            "POST",
            &format!("{SUB}/providers/Microsoft.ApiManagement/register?api-version=2025-04-01"),
            None,
            &[],
        )
        .await;
    // Registering takes a while in Azure, and `up` would be refused meanwhile: doctor says wait.
    assert_eq!(register.body["registrationState"], "Registering");
    let (code, stdout, _) = world.doctor().await;
    assert_eq!(code, Some(1));
    assert_eq!(
        line_of(&stdout, "provider"),
        format!(
            "error   provider: resource provider Microsoft.ApiManagement is Registering in \
             subscription {SUBSCRIPTION}\n        hint: the registration is under way (a minute \
             or two): wait for it with `az provider register --namespace \
             Microsoft.ApiManagement --subscription {SUBSCRIPTION} --wait`, then run doctor again"
        )
    );
    world
        .sandbox
        .advance(provision::clock::SignedDuration::from_secs(60))
        .expect("the clock moves");
    let (_, stdout, _) = world.doctor().await;
    assert!(
        stdout.contains(&format!(
            "ok      provider: Microsoft.ApiManagement is registered in subscription {SUBSCRIPTION}"
        )),
        "{stdout}"
    );
    let (_, stdout, _) = world.doctor().await;
    assert!(
        stdout.contains(&format!(
            "ok      provider: Microsoft.ApiManagement is registered in subscription {SUBSCRIPTION}\n"
        )),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_on_a_failing_check_with_nothing_written() {
    let world = World::new().await;
    world.sandbox.state().arm.operator_role = Some("Contributor".to_owned());
    let from = world.sandbox.requests().len();
    let (code, stdout, stderr) = world.run(&["up", "--env", "local", "--yes"]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stderr.starts_with(
            "error: preflight: the identity may not Microsoft.Authorization/roleAssignments/write"
        ),
        "{stderr}"
    );
    assert_eq!(world.writes(from), Vec::<String>::new());
    assert!(world.sandbox.state().arm.resources.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_providers_permissions_and_unknown_types_as_arm() {
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);
    let list = arm
        .get(&format!("{SUB}/providers?api-version=2025-04-01"))
        .await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Microsoft.ApiManagement",
            "Microsoft.CognitiveServices",
            "Microsoft.Authorization"
        ]
    );
    let missing = arm
        .get(&format!(
            "{SUB}/providers/Microsoft.Nothing?api-version=2025-04-01"
        ))
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "InvalidResourceNamespace")
    );

    // A token of another principal, which holds no role: no permissions.
    let mut stranger = Arm::new(&world.sandbox);
    stranger.token = Some(crate::sandbox_support::token_with(
        &world.sandbox,
        0,
        json!({"aud": "https://management.azure.com/", "oid": "0c1d0000-0000-4000-8000-000000000001"}),
    ));
    let none = stranger
        .get(&format!(
            "{SUB}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
        ))
        .await;
    assert_eq!(
        (none.status, none.body.clone()),
        (200, json!({"value": []}))
    );

    // A type the provider does not have: 404, not an api-version error.
    let unknown = arm
        .get(&format!(
            "{SUB}/providers/Microsoft.ApiManagement/locations/swedencentral/nothing/x?api-version=2024-05-01"
        ))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "InvalidResourceType")
    );

    // A write under an unregistered provider is refused as ARM refuses it.
    let post = |verb: &str| {
        format!("{SUB}/providers/Microsoft.CognitiveServices/{verb}?api-version=2025-04-01")
    };
    assert_eq!(
        arm.send("POST", &post("unregister"), None, &[])
            .await
            .status,
        200
    );
    arm.group("rg").await;
    let put = arm
        .put(
            &format!(
                "{}/providers/Microsoft.CognitiveServices/accounts/a?api-version=2025-06-01",
                group_path("rg")
            ),
            &account("a-sub"),
        )
        .await;
    assert_eq!(
        (put.status, put.code()),
        (409, "MissingSubscriptionRegistration")
    );
    assert_eq!(
        put.message(),
        "The subscription is not registered to use namespace 'Microsoft.CognitiveServices'. See \
         https://aka.ms/rps-not-found for how to register subscriptions."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_checks_answer_in_the_shapes_of_the_official_examples() {
    use crate::arm_fixtures::Example;
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);

    // The example answers for a subdomain that is not available: one that is taken here.
    let domain = Example::load(
        "cognitiveservices/resource-manager/Microsoft.CognitiveServices/stable/2025-06-01/\
         examples/CheckDomainAvailability.json",
    );
    arm.group("rg").await;
    let taken = domain.body()["subdomainName"].as_str().unwrap().to_owned();
    let path = format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/taken?api-version=2025-06-01",
        group_path("rg")
    );
    assert!(arm.put(&path, &account(&taken)).await.status < 300);
    let answer = arm
        .send(
            "POST",
            &format!(
                "{SUB}/providers/Microsoft.CognitiveServices/checkDomainAvailability?api-version={}",
                domain.str("api-version")
            ),
            Some(&domain.body()),
            &[],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    domain.assert_matches(200, &answer.body);
    assert_eq!(answer.body["isSubdomainAvailable"], false);

    let name = Example::load(
        "apimanagement/resource-manager/Microsoft.ApiManagement/stable/2024-05-01/examples/\
         ApiManagementServiceCheckNameAvailability.json",
    );
    let answer = arm
        .send(
            "POST",
            &format!(
                "{SUB}/providers/Microsoft.ApiManagement/checkNameAvailability?api-version={}",
                name.str("api-version")
            ),
            Some(&name.body()),
            &[],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    name.assert_matches(200, &answer.body);
    assert_eq!(
        answer.body,
        json!({"nameAvailable": true, "reason": "Valid", "message": ""})
    );
}
