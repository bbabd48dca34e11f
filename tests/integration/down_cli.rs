//! `provision down` and `plan --destroy` end to end: the real binary against an in-process
//! sandbox, judged by what the sandbox holds afterwards and by its request log, never by what the
//! tool says it did.

use std::process::Output;

use provision::sandbox::{DEFAULT_SUBSCRIPTION, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::output_contract::lines;
use crate::project::Project;
use crate::sandbox_support::{Arm, start};

const ACCOUNT: &str = "llmgw-foundry-local";
const GROUP: &str = "rg-llm-gateway-local";

/// A sandbox and a project with two environments on it: `local` and `other` (the same shape,
/// every name changed), and optionally `guarded` (`local`, protected).
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) project: Project,
}

impl World {
    async fn new() -> World {
        World::with(SandboxConfig::default()).await
    }

    pub(crate) async fn with(config: SandboxConfig) -> World {
        let sandbox = start(config).await;
        let project = Project::new();
        let local = project.read("environments/local.yaml").replace(
            "address: 127.0.0.1:7171",
            &format!("address: {}", sandbox.addr()),
        );
        project.write("environments/local.yaml", &local);
        project.write("environments/other.yaml", &local.replace("local", "other"));
        project.write(
            "environments/guarded.yaml",
            &format!("{}\nprotected: true\n", local.replace("local", "guarded")),
        );
        World { sandbox, project }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    pub(crate) async fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Ids of live ARM resources (lower-cased) whose tag `provision-env` is `env`.
    pub(crate) fn arm_of(&self, env: &str) -> Vec<String> {
        let state = self.sandbox.state();
        state
            .arm
            .resources
            .iter()
            .filter(|(_, r)| {
                r.body.get("tags").and_then(|t| t.get("provision-env")) == Some(&json!(env))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Every ARM id (lower-cased), live.
    fn arm_all(&self) -> Vec<String> {
        self.sandbox.state().arm.resources.keys().cloned().collect()
    }

    /// Soft-deleted accounts and services, and directory objects (live or deleted) carrying the
    /// environment's Graph tag.
    pub(crate) fn leftovers(&self, env: &str) -> (usize, usize, usize) {
        let state = self.sandbox.state();
        let tag = format!("provision-env:{env}");
        let accounts = state
            .arm
            .deleted_accounts
            .values()
            .filter(|r| {
                r.body.get("tags").and_then(|t| t.get("provision-env")) == Some(&json!(env))
            })
            .count();
        let services = state
            .arm
            .deleted_services
            .keys()
            .filter(|k| k.contains(&format!("apim-llmgw-{env}")))
            .count();
        let apps = state
            .objects
            .iter()
            .filter(|o| {
                o.body
                    .get("tags")
                    .and_then(Value::as_array)
                    .is_some_and(|t| t.contains(&json!(tag)))
            })
            .count();
        (accounts, services, apps)
    }

    /// Requests from `from` on that changed something (not GET).
    pub(crate) fn writes_since(&self, from: usize) -> Vec<String> {
        self.sandbox
            .requests()
            .iter()
            .skip(from)
            // Token requests are sign-ins, not changes.
            .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_purge_leaves_nothing_of_the_environment_and_writes_nothing_else() {
    let world = World::new().await;
    world.ok(&["up", "--env", "other"]).await;
    world.ok(&["up", "--env", "local"]).await;
    let other_before = world.arm_of("other");
    assert_eq!(
        other_before.len(),
        3,
        "group, account, service: {other_before:?}"
    );
    let local_before = world.arm_of("local");
    assert_eq!(local_before.len(), 3, "{local_before:?}");
    let identity = {
        let state = world.sandbox.state();
        let account = state
            .arm
            .resources
            .values()
            .find(|r| r.id.ends_with(ACCOUNT))
            .unwrap();
        account.body["identity"]["principalId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let principal_exists = |id: &str| {
        world
            .sandbox
            .state()
            .objects
            .iter()
            .any(|o| o.id().eq_ignore_ascii_case(id))
    };
    assert!(principal_exists(&identity));
    let from = world.sandbox.requests().len();
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    assert!(
        !principal_exists(&identity),
        "the purged account's managed identity left the directory"
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout.starts_with("environment local torn down: 15 removed, 6 purged, in "),
        "{stdout}"
    );
    assert!(world.arm_of("local").is_empty());
    assert!(
        world.arm_all().iter().all(|id| !id.contains("local")),
        "{:?}",
        world.arm_all()
    );
    assert_eq!(world.leftovers("local"), (0, 0, 0));
    assert_eq!(world.arm_of("other"), other_before);
    let writes = world.writes_since(from);
    assert!(!writes.is_empty());
    for write in &writes {
        assert!(
            !write.contains("other"),
            "a write to the other environment: {write}"
        );
        assert!(write.starts_with("DELETE "), "only deletes: {write}");
    }
    // Idempotent: nothing left to find.
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    assert!(
        text(&out)
            .0
            .starts_with("environment local torn down: 0 removed, 0 purged")
    );
    // The same names again at once.
    world.ok(&["up", "--env", "local"]).await;
    assert_eq!(world.arm_of("local").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_without_purge_says_what_stays_soft_deleted_and_a_purge_finishes_it() {
    let world = World::new().await;
    world.ok(&["up", "--env", "local"]).await;
    let out = world.ok(&["down", "--env", "local"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("left soft-deleted, holding their names:"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("foundry account {ACCOUNT} until ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("apim service apim-llmgw-local until "),
        "{stdout}"
    );
    assert!(stdout.contains("to free the names now: provision down --env local --purge"));
    assert_eq!(world.leftovers("local"), (1, 1, 2));
    // `up` is blocked by the soft-deleted account, as on Azure; a purge frees the name.
    let blocked = world.run(&["up", "--env", "local"]).await;
    assert_eq!(blocked.status.code(), Some(1));
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    assert!(
        text(&out)
            .0
            .starts_with("environment local torn down: 0 removed, 6 purged")
    );
    assert_eq!(world.leftovers("local"), (0, 0, 0));
    world.ok(&["up", "--env", "local"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_holds_something_not_ours_survives_with_it() {
    let world = World::new().await;
    // `up` creates the group (so it carries the marks); someone then puts their own account in it.
    world.ok(&["up", "--env", "local"]).await;
    let arm = Arm::new(&world.sandbox);
    let stranger = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.CognitiveServices/accounts/stranger"
    );
    let made = arm
        .put(
            &format!("{stranger}?api-version=2025-06-01"),
            &json!({"location": "swedencentral", "kind": "AIServices", "sku": {"name": "S0"}, "properties": {}}),
        )
        .await;
    assert!((200..300).contains(&made.status), "{:?}", made.body);
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(&format!(
            "resource group {GROUP}: left alone, it holds resources that are not this environment's: stranger"
        )),
        "{stderr}"
    );
    let all = world.arm_all();
    assert!(all.contains(&stranger.to_ascii_lowercase()), "{all:?}");
    assert!(
        all.iter()
            .any(|id| id.ends_with(&format!("resourcegroups/{GROUP}")))
    );
    assert!(!all.iter().any(|id| id.contains(ACCOUNT)), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_named_in_the_file_without_the_marks_is_left_alone_with_what_is_inside() {
    let world = World::new().await;
    world.ok(&["up", "--env", "local"]).await;
    let account = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}"
    )
    .to_ascii_lowercase();
    world
        .sandbox
        .state()
        .arm
        .resources
        .get_mut(&account)
        .unwrap()
        .body
        .remove("tags");
    let out = world.ok(&["plan", "--destroy", "--env", "local"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(&format!(
            "foundry account {ACCOUNT}: left alone, it does not carry the tags managed-by: provision and provision-env: local"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "foundry deployment gpt-5.6-luna: left alone, it is inside foundry account {ACCOUNT}, which is not this environment's"
    )));
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    let all = world.arm_all();
    assert!(all.contains(&account), "{}", text(&out).1);
    assert!(all.contains(&format!("{account}/deployments/gpt-5.6-luna")));
    // The group holds the account that is not ours, so it stays too.
    assert!(
        all.iter()
            .any(|id| id.ends_with(&format!("resourcegroups/{GROUP}")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_environment_needs_force_and_nothing_is_sent_without_it() {
    let world = World::new().await;
    let from = world.sandbox.requests().len();
    let out = world.run(&["down", "--env", "guarded"]).await;
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("environment guarded is protected: `down` would delete it"),
        "{stderr}"
    );
    assert!(stderr.contains(
        "hint: nothing was read or changed; to tear it down anyway, run again with --force"
    ));
    assert_eq!(world.sandbox.requests().len(), from, "no request at all");
    // With --force but no --yes and no terminal: it reads, shows, and refuses before writing.
    world.ok(&["up", "--env", "guarded", "--yes"]).await;
    let from = world.sandbox.requests().len();
    let out = world.run(&["down", "--env", "guarded", "--force"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("hint: review the preview above and run again with --force --yes")
    );
    assert!(world.writes_since(from).is_empty());
    world
        .ok(&["down", "--env", "guarded", "--force", "--yes", "--purge"])
        .await;
    assert!(world.arm_of("guarded").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_destroy_json_lines_follow_the_schema() {
    let world = World::new().await;
    world.ok(&["up", "--env", "local"]).await;
    let out = world
        .ok(&[
            "plan",
            "--destroy",
            "--purge",
            "--env",
            "local",
            "--output",
            "json",
        ])
        .await;
    let all = lines(&text(&out).0);
    let actions: Vec<(&str, &str)> = all
        .iter()
        .filter(|l| l["type"] == "resource")
        .map(|l| (l["kind"].as_str().unwrap(), l["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions.iter().filter(|(_, a)| *a == "delete").count(), 15);
    assert_eq!(
        actions
            .iter()
            .filter(|(_, a)| *a == "purge")
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        [
            "api_app",
            "api_service_principal",
            "client_app",
            "client_service_principal",
            "account",
            "apim_service"
        ]
    );
    let summary = all.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["delete"].clone(), summary["purge"].clone()),
        (json!(15), json!(6))
    );
    let down = world
        .ok(&["down", "--env", "local", "--purge", "--output", "json"])
        .await;
    let all = lines(&text(&down).0);
    let last = all.last().unwrap();
    assert_eq!(last["type"], "down");
    assert_eq!(
        (last["removed"].clone(), last["purged"].clone()),
        (json!(15), json!(6))
    );
}

/// `$filter` as a query value: spaces and quotes encoded.
fn encoded(filter: &str) -> String {
    filter.replace(' ', "%20").replace('\'', "%27")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_lists_resources_by_tag_without_their_tags_and_in_pages() {
    let world = World::new().await;
    world.ok(&["up", "--env", "local"]).await;
    world.ok(&["up", "--env", "other"]).await;
    let arm = Arm::new(&world.sandbox);
    let base = format!("/subscriptions/{DEFAULT_SUBSCRIPTION}/resources?api-version=2021-04-01");
    let by_value = encoded("tagName eq 'provision-env' and tagValue eq 'local'");
    let page = arm.get(&format!("{base}&$filter={by_value}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.body["value"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["apim-llmgw-local", ACCOUNT]);
    assert!(items.iter().all(|i| i.get("tags").is_none()), "{items:?}");
    assert!(page.body.get("nextLink").is_none());
    let first = arm.get(&format!("{base}&$filter={by_value}&$top=1")).await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 1);
    let next = first.body["nextLink"].as_str().unwrap();
    let rest = next.strip_prefix(world.sandbox.base_url()).unwrap();
    let second = arm.get(rest).await;
    assert_eq!(second.body["value"][0]["name"], ACCOUNT);
    assert!(second.body.get("nextLink").is_none());
    let by_name = encoded("tagName eq 'provision-env'");
    let all = arm.get(&format!("{base}&$filter={by_name}")).await;
    let items = all.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i["tags"]["managed-by"] == "provision"));
    let bad = arm
        .get(&format!("{base}&$filter={}", encoded("colour eq 'x'")))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (400, "InvalidFilterInQueryString")
    );
    let groups = arm
        .get(&format!(
            "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourcegroups?api-version=2021-04-01&$filter={by_value}"
        ))
        .await;
    let names: Vec<&str> = groups.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [GROUP]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_apim_service_waits_48_hours_in_deletedservices_and_holds_its_name() {
    let world = World::new().await;
    let arm = Arm::new(&world.sandbox);
    arm.group("rg-soft").await;
    let service = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/rg-soft/providers/Microsoft.ApiManagement/service/apim-soft?api-version=2024-05-01"
    );
    let deleted = format!(
        "/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.ApiManagement/locations/westeurope/deletedservices/apim-soft?api-version=2024-05-01"
    );
    let body = json!({
        "location": "West Europe",
        "sku": { "name": "Developer", "capacity": 1 },
        "properties": { "publisherEmail": "ops@contoso.example", "publisherName": "ops" }
    });
    let create = |body: Value| {
        let (arm, service) = (&arm, service.clone());
        async move {
            let made = arm.put(&service, &body).await;
            if made.status == 201
                && let Some(location) = made.header("location")
            {
                arm.wait_location(location).await;
            }
            made
        }
    };
    assert_eq!(create(body.clone()).await.status, 201);
    assert_eq!(arm.delete(&service).await.status, 200);
    let tombstone = arm.get(&deleted).await;
    assert_eq!(tombstone.status, 200, "{}", tombstone.body);
    assert_eq!(
        tombstone.body["type"],
        "Microsoft.ApiManagement/deletedservices"
    );
    assert_eq!(
        tombstone.body["properties"]["serviceId"],
        service.split('?').next().unwrap()
    );
    assert!(tombstone.body["properties"]["scheduledPurgeDate"].is_string());
    let listed = arm
        .get(&format!(
            "/subscriptions/{DEFAULT_SUBSCRIPTION}/providers/Microsoft.ApiManagement/deletedservices?api-version=2024-05-01"
        ))
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    let refused = create(body.clone()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "ServiceAlreadyExistsInSoftDeletedState")
    );
    assert_eq!(
        refused.message(),
        "Api service apim-soft was soft-deleted. In order to create the new service with the same name, you have to either undelete the service or purge it. See https://aka.ms/apimsoftdelete."
    );
    let mut restore = body.clone();
    restore["properties"]["restore"] = json!(true);
    assert_eq!(create(restore).await.status, 201);
    assert_eq!(arm.get(&deleted).await.status, 404);
    // Deleted again and purged: the name is free at once; a second purge finds nothing.
    assert_eq!(arm.delete(&service).await.status, 200);
    assert_eq!(arm.delete(&deleted).await.status, 200);
    assert_eq!(arm.delete(&deleted).await.status, 204);
    assert_eq!(create(body.clone()).await.status, 201);
    // Without a purge, the service itself lets go after 48 hours.
    assert_eq!(arm.delete(&service).await.status, 200);
    world
        .sandbox
        .advance(provision::clock::SignedDuration::from_hours(48))
        .unwrap();
    // A fresh token: the old one expired with the 48 hours.
    let arm = Arm::new(&world.sandbox);
    assert_eq!(arm.get(&deleted).await.status, 404);
    assert_eq!(arm.put(&service, &body).await.status, 201);
}

/// The live or deleted application of a uniqueName: (object id, appId, deleted).
fn app_of(world: &World, unique_name: &str) -> Option<(String, String, bool)> {
    let state = world.sandbox.state();
    state
        .objects
        .iter()
        .find(|o| o.body.get("uniqueName") == Some(&json!(unique_name)))
        .map(|o| {
            (
                o.id().to_owned(),
                o.str("appId").unwrap_or_default().to_owned(),
                o.deleted_ms.is_some(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_client_is_planned_as_one_create_and_one_delete_and_up_removes_the_old_app() {
    let world = World::new().await;
    world.ok(&["up", "--env", "local"]).await;
    let (_, old_app_id, _) = app_of(&world, "llm-gateway-notebooks-local").unwrap();
    let renamed = world.project.read("environments/local.yaml").replace(
        "unique_name: llm-gateway-notebooks-local",
        "unique_name: llm-gateway-nb2-local",
    );
    world.project.write("environments/local.yaml", &renamed);
    let out = world
        .ok(&["plan", "--env", "local", "--output", "json"])
        .await;
    let changes: Vec<(String, String, String)> = lines(&text(&out).0)
        .iter()
        .filter(|l| l["type"] == "resource" && l["action"] != "no-op")
        .map(|l| {
            (
                l["action"].as_str().unwrap().to_owned(),
                l["kind"].as_str().unwrap().to_owned(),
                l["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("create", "client_app", "llm-gateway-nb2-local"),
        (
            "create",
            "client_service_principal",
            "llm-gateway-nb2-local",
        ),
        ("update", "api_pre_authorization", "llm-gateway-api-local"),
        ("update", "policy", "llm"),
        (
            "delete",
            "client_service_principal",
            "llm-gateway-notebooks-local",
        ),
        ("delete", "client_app", "llm-gateway-notebooks-local"),
    ]
    .map(|(a, k, n)| (a.to_owned(), k.to_owned(), n.to_owned()));
    assert_eq!(changes, want);
    world.ok(&["up", "--env", "local"]).await;
    let (_, _, deleted) = app_of(&world, "llm-gateway-notebooks-local").unwrap();
    assert!(deleted, "the old registration is soft-deleted");
    let (_, new_app_id, deleted) = app_of(&world, "llm-gateway-nb2-local").unwrap();
    assert!(!deleted);
    let policy = {
        let state = world.sandbox.state();
        let id = format!(
            "/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.ApiManagement/service/apim-llmgw-local/apis/llm/policies/policy"
        );
        serde_json::to_string(&state.arm.get(&id).unwrap().body).unwrap()
    };
    assert!(
        policy.contains(&new_app_id),
        "the policy admits the new client"
    );
    assert!(!policy.contains(&old_app_id), "and no longer the old one");
    let out = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).0);
    // Through the live gateway: the new client's token passes, the old one's no longer does.
    world
        .sandbox
        .advance(provision::clock::SignedDuration::from_mins(10))
        .unwrap();
    let (_, api_id, _) = app_of(&world, "llm-gateway-api-local").unwrap();
    assert_eq!(
        call_gateway(&world, &api_id, &new_app_id).await,
        (200, "".to_owned())
    );
    assert_eq!(
        call_gateway(&world, &api_id, &old_app_id).await,
        (401, "TokenClientApplicationNotAllowed".to_owned())
    );
}

/// A chat completion through the gateway with a token of the default tenant for `api_id`,
/// obtained by `client_id`: the status and the gateway's reason for a denial.
async fn call_gateway(world: &World, api_id: &str, client_id: &str) -> (u16, String) {
    use base64::Engine;
    let sandbox = &world.sandbox;
    let (der, kid) = {
        let state = sandbox.state();
        let key = &state.tenants[0].keys[0];
        (
            base64::engine::general_purpose::STANDARD
                .decode(&key.pkcs8)
                .unwrap(),
            key.kid.clone(),
        )
    };
    let signer = provision::policy::token::TokenSigner::from_pkcs8_der(&der, &kid).unwrap();
    let now = sandbox.now().as_second();
    let tenant = provision::sandbox::DEFAULT_TENANT;
    let token = signer.sign(&json!({
        "aud": api_id,
        "iss": format!("{}/{tenant}/v2.0", sandbox.base_url()),
        "tid": tenant,
        "oid": "0c1d0000-0000-4000-8000-0000000000ab",
        "azp": client_id,
        "scp": "llm.invoke",
        "ver": "2.0",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
    }));
    let answer = crate::sandbox_support::client()
        .post(format!(
            "{}/apim/apim-llmgw-local{}",
            sandbox.base_url(),
            crate::gateway::CHAT
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"messages":[{"role":"user","content":"hello"}]}"#)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let record = serde_json::to_value(sandbox.requests().last().unwrap().gateway.clone()).unwrap();
    let reason = if status == 200 {
        String::new()
    } else {
        record["reason"].as_str().unwrap_or_default().to_owned()
    };
    (status, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_expired_tears_down_only_what_has_expired_from_the_marks_alone() {
    let world = World::new().await;
    let local = world.project.read("environments/local.yaml");
    world.project.write(
        "environments/old.yaml",
        &format!("{}\nlifetime: 1h\n", local.replace("local", "old")),
    );
    world.project.write(
        "environments/young.yaml",
        &format!("{}\nlifetime: 10h\n", local.replace("local", "young")),
    );
    world.ok(&["up", "--env", "old"]).await;
    world.ok(&["up", "--env", "young"]).await;
    world.ok(&["up", "--env", "guarded", "--yes"]).await;
    let marked = world
        .sandbox
        .state()
        .arm
        .resources
        .values()
        .filter(|r| {
            r.body
                .get("tags")
                .and_then(|t| t.get("provision-expires"))
                .is_some()
        })
        .count();
    assert_eq!(
        marked, 6,
        "group, account and service of old and young carry an expiry"
    );
    world
        .sandbox
        .advance(provision::clock::SignedDuration::from_hours(2))
        .unwrap();
    // The expiry was written once: a later plan keeps it and has nothing to change.
    let plan = world
        .run(&["plan", "--env", "young", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    let (young, guarded) = (world.arm_of("young"), world.arm_of("guarded"));
    // The expired environment's file is gone: the marks are all `down --expired` needs.
    std::fs::remove_file(world.project.path("environments/old.yaml")).unwrap();
    let from = world.sandbox.requests().len();
    let out = world.ok(&["down", "--env", "local", "--expired"]).await;
    let (stdout, stderr) = text(&out);
    assert!(stderr.contains("1 expired environment(s) at "), "{stderr}");
    assert!(stderr.contains("  old expired at "), "{stderr}");
    assert!(
        stdout.starts_with("environment old torn down: "),
        "{stdout}"
    );
    assert!(world.arm_of("old").is_empty());
    assert_eq!(world.leftovers("old"), (0, 0, 0));
    assert_eq!(world.arm_of("young"), young);
    assert_eq!(world.arm_of("guarded"), guarded);
    for write in world.writes_since(from) {
        assert!(
            write.contains("old") || !write.contains("young") && !write.contains("guarded"),
            "{write}"
        );
    }
    // Protected environments never expire: refused at validate.
    world.project.write(
        "environments/bad.yaml",
        &format!(
            "{}\nprotected: true\nlifetime: 8h\n",
            local.replace("local", "bad")
        ),
    );
    let out = world.run(&["validate", "--env", "bad"]).await;
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    let stderr = stdout + &stderr;
    assert!(
        stderr.contains("lifetime: a protected environment never expires"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:33:1: lifetime: a protected environment never expires"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: remove `lifetime:`"), "{stderr}");
}
