//! The sandbox as real clients find it: `provision up` against a `--tls` sandbox served on its
//! own, and the requests the Azure CLI 2.91 sends when pointed at `sandbox serve --tls` as a
//! custom cloud (each test sends the CLI's request, cited from azure-cli's source, and asserts
//! the answer the CLI reads).

use std::process::Output;

use provision::clock::SignedDuration;
use provision::sandbox::{
    DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, LatencyProfile, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

use crate::arm_fixtures::Example;
use crate::project::Project;
use crate::sandbox_support::{Arm, client, default_sandbox, group_path, operator, start, trusting};

/// A `--tls` sandbox with its certificate in a state directory, and a project whose `local`
/// environment points at it with `extra` as the rest of its `sandbox:` mapping (`{ca}` there
/// stands for the certificate's path).
async fn tls_world(extra: &str) -> (Sandbox, Project, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let sandbox = start(SandboxConfig {
        tls: true,
        state_dir: Some(state.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await;
    let project = Project::new();
    let local = project.read("environments/local.yaml").replace(
        "address: 127.0.0.1:7171",
        &format!(
            "address: {}{}",
            sandbox.addr(),
            extra.replace(
                "{ca}",
                &state.path().join("sandbox-cert.pem").display().to_string()
            )
        ),
    );
    project.write("environments/local.yaml", &local);
    (sandbox, project, state)
}

async fn run(project: &Project, args: &[&str]) -> Output {
    let mut cmd = project.provision();
    cmd.args(args).env_remove("PROVISION_AUTH");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_converges_against_a_tls_sandbox_trusting_its_certificate() {
    let (sandbox, project, _state) = tls_world("\n  tls: true\n  ca_file: {ca}").await;
    let up = run(&project, &["up", "--env", "local"]).await;
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}\n{}",
        text(&up.stdout),
        text(&up.stderr)
    );
    let api_url = format!("https://{}/apim/apim-llmgw-local/llm", sandbox.addr());
    assert!(text(&up.stdout).contains(&api_url), "{}", text(&up.stdout));
    // The policy pins the sandbox's https authority: its tokens' issuer.
    let policy = {
        let state = sandbox.state();
        state
            .arm
            .resources
            .values()
            .find(|r| {
                r.id.to_ascii_lowercase()
                    .ends_with("/apis/llm/policies/policy")
            })
            .map(|r| serde_json::Value::Object(r.body.clone()))
            .unwrap()
    };
    let xml = policy["properties"]["value"].as_str().unwrap();
    assert!(
        xml.contains(&format!(
            "authentication-endpoint=\"https://{}\"",
            sandbox.addr()
        )),
        "{xml}"
    );

    let lag = SandboxConfig::default().replication_lag_ms();
    sandbox
        .advance(SignedDuration::from_millis(lag as i64 + 1))
        .unwrap();
    let plan = run(&project, &["plan", "--env", "local", "--detailed-exitcode"]).await;
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
    assert_eq!(
        text(&plan.stdout),
        "0 to create, 0 to update, 0 to replace, 0 to delete, 16 unchanged.\n"
    );

    // `verify` mints its foreign-tenant and expired tokens from the same https listener.
    let verify = verify_approving(&project, &sandbox).await;
    let summary = text(&verify.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .unwrap();
    assert_eq!(
        (verify.status.code(), summary),
        (
            Some(0),
            json!({"type": "summary", "env": "local", "cases": 12, "held": 12, "failed": 0,
                   "skipped": 0, "drifted": 0})
        ),
        "{}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

/// `verify --env local --output json`, approving its device code through the TLS sandbox's
/// admin API (trusting only the sandbox's certificate) as the signed-in user would.
async fn verify_approving(project: &Project, sandbox: &Sandbox) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("provision"));
    cmd.current_dir(project.dir.path())
        .args([
            "--color", "never", "verify", "--env", "local", "--output", "json",
        ])
        .env_remove("RUST_LOG")
        .env_remove("PROVISION_AUTH")
        .env("PROVISION_CACHE_DIR", cache.path());
    let (child, code, reader) = crate::client::spawn_awaiting_code(cmd);
    let code = code.await.expect("verify asks for a device code");
    let approved = trusting(&sandbox.certificate_pem().unwrap())
        .post(format!(
            "{}/_sandbox/device-codes/{code}/approve",
            sandbox.base_url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 200);
    crate::client::finish(child, reader).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_sandbox_with_another_certificate_is_refused() {
    let other = tempfile::tempdir().unwrap();
    // Another sandbox's certificate: valid PEM, not the one served.
    let decoy = start(SandboxConfig {
        tls: true,
        state_dir: Some(other.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await;
    let ca = other.path().join("sandbox-cert.pem");
    assert!(decoy.certificate_pem().is_some());
    let (sandbox, project, _state) =
        tls_world(&format!("\n  tls: true\n  ca_file: {}", ca.display())).await;
    let out = run(&project, &["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    // Nothing was asked of the sandbox: the handshake failed first.
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_are_checked_before_the_network() {
    for (extra, expected) in [
        (
            "\n  tls: true",
            "error: environments/local.yaml:13:3: sandbox.tls: `tls: true` needs `ca_file:`, the certificate the sandbox serves\n",
        ),
        (
            "\n  ca_file: cert.pem",
            "error: environments/local.yaml:13:3: sandbox.ca_file: `ca_file:` applies to a sandbox that serves HTTPS\n",
        ),
    ] {
        let (_sandbox, project, _state) = tls_world(extra).await;
        let out = run(&project, &["validate", "--env", "local"]).await;
        assert_eq!(out.status.code(), Some(1), "{extra}");
        // `validate` reports on stdout, as its findings are its output.
        let err = text(&out.stdout);
        assert!(err.starts_with(expected), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
    }
    let (_sandbox, project, _state) = tls_world("\n  tls: true\n  ca_file: missing.pem").await;
    let out = run(&project, &["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: environments/local.yaml: sandbox.ca_file missing.pem: "),
        "{err}"
    );
    assert!(err.contains("\nhint: point `sandbox.ca_file` at"), "{err}");
}

/// `GET` `url` with `client`, as status and JSON body (`Null` when there is none).
async fn get_json(client: &reqwest::Client, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut request = client.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The client-credentials form MSAL posts for `az login --service-principal`: the resource as
/// a `.default` scope (azure-cli `core/auth/util.py` `resource_to_scopes`: the resource, a `/`
/// unless it ends with one, then `.default`).
async fn client_credentials(sandbox: &Sandbox, resource: &str) -> (u16, Value) {
    let (id, secret) = operator(sandbox).await;
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let response = client()
        .post(format!(
            "{}/{DEFAULT_TENANT}/oauth2/v2.0/token",
            sandbox.base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Item 1: `az cloud register --endpoint-resource-manager URL` GETs
/// `URL + '/metadata/endpoints?api-version=2022-09-01'` and indexes the answer as one cloud.
#[tokio::test]
async fn cloud_metadata_is_one_cloud_at_the_version_az_asks_for_with_or_without_a_slash() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url();
    let http = client();
    for arm_endpoint in [base.to_owned(), format!("{base}/")] {
        let url = format!("{arm_endpoint}/metadata/endpoints?api-version=2022-09-01");
        let (status, cloud) = get_json(&http, &url, None).await;
        assert_eq!(status, 200, "{url}");
        assert!(cloud.is_object(), "{url}: {cloud}");
        assert_eq!(cloud["name"], "Sandbox");
        assert_eq!(cloud["resourceManager"], format!("{base}/"));
        assert_eq!(cloud["authentication"]["loginEndpoint"], base);
        assert_eq!(
            cloud["authentication"]["audiences"][0],
            "https://management.core.windows.net/"
        );
        assert_eq!(cloud["microsoftGraphResourceId"], format!("{base}/"));
        assert_eq!(
            cloud["suffixes"]["sqlServerHostname"],
            "database.windows.net"
        );
    }
    // Only 2020-06-01 lists every cloud.
    let (status, all) = get_json(
        &http,
        &format!("{base}/metadata/endpoints?api-version=2020-06-01"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    // Two slashes elsewhere are not folded: only the cloud register's own request is.
    let (status, _) = get_json(
        &http,
        &format!("{base}//metadata//endpoints?api-version=2022-09-01"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Item 2: az asks for a Graph token for the advertised `microsoftGraphResourceId` and calls
/// `microsoftGraphResourceId + 'v1.0'` with it (azure-cli `role/_msgrpah/_graph_client.py`).
#[tokio::test]
async fn the_advertised_graph_resource_gets_a_token_graph_accepts() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url();
    let http = client();
    let (_, cloud) = get_json(
        &http,
        &format!("{base}/metadata/endpoints?api-version=2022-09-01"),
        None,
    )
    .await;
    let resource = cloud["microsoftGraphResourceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, token) = client_credentials(&sandbox, &resource).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    let jwt = provision::policy::token::Jwt::parse(access).unwrap();
    assert_eq!(jwt.claim_str("aud"), Some("https://graph.microsoft.com"));
    let (status, apps) =
        get_json(&http, &format!("{resource}v1.0/applications"), Some(access)).await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["value"], json!([]));
    // Another loopback origin is not the sandbox's Graph: refused as Entra refuses an unknown
    // resource.
    let (status, refused) = client_credentials(&sandbox, "https://127.0.0.2:1/").await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error_description"].as_str().unwrap().starts_with(
            "AADSTS500011: The resource principal named https://127.0.0.2:1 was not found"
        ),
        "{refused}"
    );
}

/// Item 3: `az apim create` (azure-cli `apim/custom.py` `apim_create`, through the SDK's
/// `begin_create_or_update` poller) follows `Location` when no `Azure-AsyncOperation` is given.
#[tokio::test]
async fn apim_service_creation_is_polled_by_location_only() {
    // Realistic operation times (the service activates for minutes), requests without delay.
    let sandbox = start(SandboxConfig {
        latency: LatencyProfile::Realistic,
        time_scale: 1000.0,
        ..SandboxConfig::default()
    })
    .await;
    let arm = Arm::new(&sandbox);
    arm.group("rg1").await;
    let path = format!(
        "{}/providers/Microsoft.ApiManagement/service/apim-cli?api-version=2024-05-01",
        group_path("rg1")
    );
    let created = arm
        .put(
            &path,
            &json!({
                "location": "westus",
                "sku": {"name": "Developer", "capacity": 1},
                "properties": {
                    "publisherEmail": "ops@example.com",
                    "publisherName": "ops",
                    "virtualNetworkType": "None",
                },
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("azure-asyncoperation"), None);
    let location = created.header("location").unwrap().to_owned();
    assert!(
        location.contains("/service/apim-cli/operationresults/"),
        "{location}"
    );
    let running = arm.get(&location).await;
    assert_eq!((running.status, &running.body), (202, &Value::Null));
    sandbox.advance(SignedDuration::from_mins(50)).unwrap();
    let done = arm.get(&location).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["name"], "apim-cli");
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
}

const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

fn role_definitions(scope: &str, query: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleDefinitions{query}")
}

/// Item 5: `az role assignment create --role "Cognitive Services OpenAI User" --scope RG`
/// resolves the name by `$filter=roleName eq '…'` at the scope, assigns the id it finds, and
/// `az role assignment list --scope RG` maps ids back to names from the unfiltered list
/// (azure-cli `command_modules/role/custom.py`, `_resolve_role_id`, `list_role_assignments`).
#[tokio::test]
async fn role_definitions_resolve_names_and_ids_at_any_scope() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let subscription = format!("/subscriptions/{DEFAULT_SUBSCRIPTION}");
    let by_name = Example::load(
        "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/examples/GetRoleDefinitionByName.json",
    );
    let by_id = Example::load(
        "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/examples/GetRoleDefinitionById.json",
    );

    let found = arm
        .get(&role_definitions(
            &group_path("rg"),
            "?$filter=roleName%20eq%20%27Cognitive%20Services%20OpenAI%20User%27&api-version=2022-04-01",
        ))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let roles = found.body["value"].as_array().unwrap();
    assert_eq!(roles.len(), 1, "{}", found.body);
    let role_id =
        format!("{subscription}/providers/Microsoft.Authorization/roleDefinitions/{OPENAI_USER}");
    assert_eq!(roles[0]["id"], role_id.as_str());
    assert_eq!(
        roles[0]["properties"]["roleName"],
        "Cognitive Services OpenAI User"
    );
    assert_eq!(roles[0]["properties"]["type"], "BuiltInRole");
    assert_eq!(roles[0]["properties"]["assignableScopes"], json!(["/"]));
    by_name.assert_matches(200, &roles[0]);

    let one = arm.get(&format!("{role_id}?api-version=2022-04-01")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body, roles[0]);
    by_id.assert_matches(200, &one.body);

    // The assignment az then makes, and the list az maps names from.
    let assignment = arm
        .put(
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/33333333-3333-4333-8333-333333333333?api-version=2022-04-01",
                group_path("rg")
            ),
            &json!({"properties": {
                "roleDefinitionId": role_id,
                "principalId": crate::sandbox_support::info(&sandbox).await["tenants"][0]["users"][0]["id"],
                "principalType": "User",
            }}),
        )
        .await;
    assert_eq!(assignment.status, 201, "{}", assignment.body);
    let all = arm
        .get(&role_definitions(
            &group_path("rg"),
            "?api-version=2022-05-01-preview",
        ))
        .await;
    assert_eq!(all.status, 200);
    let names: Vec<&str> = all.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["roleName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Owner",
            "Contributor",
            "Reader",
            "User Access Administrator",
            "Cognitive Services OpenAI User",
            "Cognitive Services OpenAI Contributor",
            "Cognitive Services User"
        ]
    );

    // The other side: unknown names and ids, filters ARM would not take, writes, absent scopes.
    let none = arm
        .get(&role_definitions(
            &subscription,
            "?$filter=roleName%20eq%20%27Nobody%27&api-version=2022-04-01",
        ))
        .await;
    assert_eq!((none.status, &none.body), (200, &json!({"value": []})));
    let missing = arm
        .get(&role_definitions(
            &subscription,
            "/00000000-0000-4000-8000-000000000000?api-version=2022-04-01",
        ))
        .await;
    assert_eq!(
        (missing.status, missing.code(), missing.message()),
        (
            404,
            "RoleDefinitionDoesNotExist",
            "The specified role definition with ID '00000000-0000-4000-8000-000000000000' does not exist."
        )
    );
    let odd = arm
        .get(&role_definitions(
            &subscription,
            "?$filter=startswith(roleName,%27C%27)&api-version=2022-04-01",
        ))
        .await;
    assert_eq!((odd.status, odd.code()), (400, "UnsupportedQuery"));
    let write = arm
        .put(
            &format!("{role_id}?api-version=2022-04-01"),
            &json!({"properties": {"roleName": "mine"}}),
        )
        .await;
    assert_eq!((write.status, write.code()), (405, "MethodNotAllowed"));
    let absent = arm
        .get(&role_definitions(
            &group_path("nowhere"),
            "?api-version=2022-04-01",
        ))
        .await;
    assert_eq!(
        (absent.status, absent.code()),
        (404, "ResourceGroupNotFound")
    );
}

const CS_API: &str = "2025-06-01";

fn account(group: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.CognitiveServices/accounts/{name}",
        group_path(group)
    )
}

/// An AIServices account `name` in `rg`, created and settled.
async fn new_account(arm: &Arm, name: &str) -> Value {
    let path = format!("{}?api-version={CS_API}", account("rg", name));
    let put = arm
        .put(
            &path,
            &json!({
                "location": "westus",
                "kind": "AIServices",
                "sku": {"name": "S0"},
                "identity": {"type": "SystemAssigned"},
                "tags": {"team": "ml"},
                "properties": {"customSubDomainName": name},
            }),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    arm.wait_async(put.header("azure-asyncoperation").unwrap())
        .await;
    arm.get(&path).await.body
}

/// Item 7: `az cognitiveservices account deployment create --sku-capacity 10` sends the
/// capacity as the string `"10"`; ARM takes it as the integer. The official PutDeployment
/// example, replayed with its capacity as az sends it.
#[tokio::test]
async fn deployment_capacity_is_taken_as_text_of_digits_as_arm_takes_it() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    new_account(&arm, "capacity").await;
    let example = Example::load(
        "cognitiveservices/resource-manager/Microsoft.CognitiveServices/CognitiveServices/stable/2025-06-01/examples/PutDeployment.json",
    );
    let mut body = example.body();
    let capacity = body["sku"]["capacity"].as_u64().unwrap();
    body["sku"]["capacity"] = json!(capacity.to_string());
    let path = format!(
        "{}/deployments/{}?api-version={CS_API}",
        account("rg", "capacity"),
        example.str("deploymentName")
    );
    let created = arm.put(&path, &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    example.assert_matches(201, &created.body);
    assert_eq!(created.body["sku"]["capacity"], json!(capacity));
    arm.wait_async(created.header("azure-asyncoperation").unwrap())
        .await;
    let got = arm.get(&path).await;
    assert_eq!(got.body["sku"]["capacity"], json!(capacity));
    assert_eq!(got.body["properties"]["currentCapacity"], json!(capacity));

    // Not a positive whole number, as text or not: refused as before.
    for bad in [
        json!("0"),
        json!("ten"),
        json!("1.5"),
        json!(""),
        json!(-3),
        json!(true),
    ] {
        let mut body = example.body();
        body["sku"]["capacity"] = bad.clone();
        let refused = arm.put(&path, &body).await;
        assert_eq!(
            (refused.status, refused.code(), refused.message()),
            (
                400,
                "InvalidRequestContent",
                "The request content was invalid: 'sku.capacity' must be a positive integer."
            ),
            "{bad}"
        );
    }
}

/// Item 8: `az cognitiveservices account recover` PUTs only `location` and
/// `properties.restore: true` (azure-cli `command_modules/cognitiveservices/custom.py`,
/// `recover`); the account comes back as it was, kind, sku, tags and identity included.
#[tokio::test]
async fn recover_restores_from_location_and_the_restore_flag_alone() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    arm.group("rg").await;
    let before = new_account(&arm, "phoenix").await;
    let path = format!("{}?api-version={CS_API}", account("rg", "phoenix"));
    let recover = json!({"location": "westus", "properties": {"restore": true}});

    let gone = arm.delete(&path).await;
    assert_eq!(gone.status, 202);
    arm.wait_location(gone.header("location").unwrap()).await;

    let restored = arm.put(&path, &recover).await;
    assert_eq!(restored.status, 201, "{}", restored.body);
    assert_eq!(restored.body["kind"], "AIServices");
    assert_eq!(restored.body["sku"], json!({"name": "S0"}));
    assert_eq!(restored.body["tags"], json!({"team": "ml"}));
    assert_eq!(
        restored.body["properties"]["provisioningState"],
        "Succeeded"
    );
    assert_eq!(
        restored.body["properties"]["internalId"],
        before["properties"]["internalId"]
    );
    assert_eq!(
        restored.body["identity"]["principalId"],
        before["identity"]["principalId"]
    );

    // With nothing soft-deleted there is nothing to take `kind` from: refused as a create is.
    let fresh = format!("{}?api-version={CS_API}", account("rg", "never-was"));
    let refused = arm.put(&fresh, &recover).await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "InvalidRequestContent"),
        "{}",
        refused.body
    );
    assert_eq!(
        refused.message(),
        "The request content was invalid: 'kind' is required."
    );
}

/// Item 9: `/_sandbox/info` of a `--tls` sandbox gives what to trust (the PEM and the file it
/// is kept in); over plain HTTP there is nothing to trust (`tls: null`).
#[tokio::test]
async fn info_gives_a_tls_sandboxs_certificate() {
    let (sandbox, _project, state) = tls_world("").await;
    let pem = sandbox.certificate_pem().unwrap();
    let (status, info) = get_json(
        &trusting(&pem),
        &format!("{}/_sandbox/info", sandbox.base_url()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let file = state.path().join("sandbox-cert.pem");
    assert_eq!(info["tls"]["ca_pem"], pem.as_str());
    assert_eq!(info["tls"]["ca_file"], file.display().to_string());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), pem);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let plain = default_sandbox().await;
    let info = crate::sandbox_support::info(&plain).await;
    assert_eq!(info["tls"], Value::Null);
}

/// Item 9: the operator secret never starts with `-` (`az login --service-principal -u ID -p
/// SECRET` reads such a secret as an option), also when a saved state had one.
#[tokio::test]
async fn the_operator_secret_never_starts_with_a_dash() {
    for _ in 0..64 {
        let sandbox = default_sandbox().await;
        let (_, secret) = operator(&sandbox).await;
        assert!(
            secret.starts_with(|c: char| c.is_ascii_alphanumeric()),
            "{secret}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let first = start(config()).await;
    Arm::new(&first).group("saved").await;
    drop(first);
    let file = dir.path().join("state.json");
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    saved["operator"]["client_secret"] = json!("-dashed-secret");
    std::fs::write(&file, saved.to_string()).unwrap();
    let again = start(config()).await;
    let (_, secret) = operator(&again).await;
    assert_ne!(secret, "-dashed-secret");
    assert!(
        secret.starts_with(|c: char| c.is_ascii_alphanumeric()),
        "{secret}"
    );
    let (status, token) = client_credentials(&again, "https://management.azure.com/").await;
    assert_eq!(status, 200, "{token}");
}

/// `GET …/service/{name}/policyDescriptions?scope=Api`, as recorded SDK sessions send it: the
/// official example replayed, the policies the gateway enforces listed.
#[tokio::test]
async fn policy_descriptions_list_what_the_gateway_enforces() {
    let sandbox = default_sandbox().await;
    let arm = Arm::new(&sandbox);
    let example = Example::load(
        "apimanagement/resource-manager/Microsoft.ApiManagement/stable/2024-05-01/examples/ApiManagementListPolicyDescriptions.json",
    );
    arm.group(example.str("resourceGroupName")).await;
    let service = format!(
        "{}/providers/Microsoft.ApiManagement/service/{}",
        group_path(example.str("resourceGroupName")),
        example.str("serviceName")
    );
    let created = arm
        .put(
            &format!("{service}?api-version=2024-05-01"),
            &json!({"location": "westus", "sku": {"name": "Developer", "capacity": 1},
                    "properties": {"publisherEmail": "ops@example.com", "publisherName": "ops"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = |scope: &str| {
        format!(
            "{service}/policyDescriptions?api-version={}&scope={scope}",
            example.str("api-version")
        )
    };

    let listed = arm.get(&url(example.str("scope"))).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    example.assert_matches(200, &listed.body);
    let names: Vec<&str> = listed.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed.body["count"], json!(names.len()));
    assert!(names.contains(&"validate-azure-ad-token"), "{names:?}");
    assert!(names.contains(&"llm-token-limit"), "{names:?}");
    let first = &listed.body["value"][0];
    assert_eq!(
        first["id"],
        format!("{service}/policyDescriptions/authentication-managed-identity")
    );
    assert_eq!(first["properties"]["scope"], 268_435_471);
    let all = arm
        .get(&format!(
            "{service}/policyDescriptions?api-version=2024-05-01"
        ))
        .await;
    assert_eq!(all.body, listed.body);

    let odd = arm.get(&url("Galaxy")).await;
    assert_eq!(
        (odd.status, odd.code(), odd.message()),
        (
            400,
            "ValidationError",
            "Invalid scope 'Galaxy'. Supported values are Tenant, Product, Api, Operation, All."
        )
    );
    let missing = arm
        .get(&format!(
            "{}/providers/Microsoft.ApiManagement/service/nothing/policyDescriptions?api-version=2024-05-01",
            group_path(example.str("resourceGroupName"))
        ))
        .await;
    assert_eq!((missing.status, missing.code()), (404, "ResourceNotFound"));
    let write = arm.put(&url("Api"), &json!({"properties": {}})).await;
    assert_eq!((write.status, write.code()), (405, "MethodNotAllowed"));
}
