//! `provision bootstrap`: the deployment identity a pipeline signs in as, made once (a second run
//! writes nothing), then used the way the pipeline would: `plan` with `--auth github-oidc` or
//! `--auth workload-identity`, and ARM refusing what its roles do not allow.

use serde_json::{Value, json};

use crate::federated::{EXCHANGE, aadsts, exchange, job, job_token, send};
use crate::project::Project;
use crate::sandbox_support::{SUBSCRIPTION, client, default_sandbox};

const GROUP: &str = "rg-llm-gateway-local";
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const OPENAI_USER: &str = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd";

fn project_at(address: &str) -> Project {
    let project = Project::new();
    let local = project
        .read("environments/local.yaml")
        .replace("address: 127.0.0.1:7171", &format!("address: {address}"));
    project.write("environments/local.yaml", &local);
    project
}

/// Runs the binary off the async runtime's threads, with `vars` set and no CI variables
/// inherited.
async fn run(project: &Project, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = project.provision();
    cmd.args(args);
    for name in [
        "PROVISION_AUTH",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ] {
        cmd.env_remove(name);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `bootstrap github` for `local` and the repository Contoso/gw, with `rest` (the trigger and
/// output flags).
fn github_bootstrap(rest: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "bootstrap",
        "github",
        "--env",
        "local",
        "--repo",
        "Contoso/gw",
    ];
    args.extend_from_slice(rest);
    args
}

/// The variables a GitHub Actions job with `id-token: write` has, signing in as `client_id`.
fn github_job<'a>(
    client_id: &'a str,
    url: &'a str,
    request_token: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("AZURE_CLIENT_ID", client_id),
        ("AZURE_TENANT_ID", provision::sandbox::DEFAULT_TENANT),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
    ]
}

fn json_line(stdout: &str) -> Value {
    crate::output_contract::lines(stdout).remove(0)
}

fn writes_since(sandbox: &provision::sandbox::Sandbox, seq: u64) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.seq > seq && r.method != "GET" && !r.path.contains("/oauth2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn last_seq(sandbox: &provision::sandbox::Sandbox) -> u64 {
    sandbox.requests().last().map_or(0, |r| r.seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_deployment_identity_is_made_once_and_plans_within_its_roles() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url().to_owned();
    let project = project_at(&sandbox.addr().to_string());
    let (code, _, stderr) = run(&project, &["up", "--env", "local", "--yes"], &[]).await;
    assert_eq!(code, 0, "{stderr}");

    let bootstrap = github_bootstrap(&["--environment", "prod", "--output", "json"]);
    let (code, stdout, stderr) = run(&project, &bootstrap, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let made = json_line(&stdout);
    assert_eq!(made["type"], "bootstrap");
    assert_eq!(made["subject"], "repo:Contoso/gw:environment:prod");
    assert_eq!(made["issuer"], json!(format!("{base}/github-actions")));
    assert_eq!(made["tenant_id"], provision::sandbox::DEFAULT_TENANT);
    assert_eq!(made["subscription_id"], SUBSCRIPTION);
    // App, SP, credential, two roles, owner of the API and the client app, Graph permission.
    assert_eq!(made["changes"].as_array().unwrap().len(), 8, "{made}");
    assert_eq!(
        made["changes"][7],
        "Microsoft Graph Application.ReadWrite.OwnedBy (admin consent)"
    );
    assert_eq!(made["notes"], json!([]), "{stderr}");
    let client_id = made["client_id"].as_str().unwrap().to_owned();
    let principal = made["principal_id"].as_str().unwrap().to_owned();

    // Again: everything is in place, nothing is written.
    let before = last_seq(&sandbox);
    let (code, stdout, stderr) =
        run(&project, &github_bootstrap(&["--environment", "prod"]), &[]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "AZURE_CLIENT_ID={client_id}\nAZURE_TENANT_ID={}\nAZURE_SUBSCRIPTION_ID={SUBSCRIPTION}\n",
            provision::sandbox::DEFAULT_TENANT
        )
    );
    assert!(stderr.contains("nothing to change"), "{stderr}");
    assert_eq!(writes_since(&sandbox, before), Vec::<String>::new());
    {
        let state = sandbox.state();
        let apps = state
            .objects
            .iter()
            .filter(|o| o.str("appId") == Some(client_id.as_str()) && o.deleted_ms.is_none())
            .count();
        assert_eq!(apps, 2, "one application and its service principal");
        assert_eq!(state.federated_credentials.len(), 1);
        let assignments = state
            .arm
            .resources
            .values()
            .filter(|r| r.property_str("principalId") == Some(principal.as_str()))
            .count();
        assert_eq!(assignments, 2);
        assert_eq!(state.owners.len(), 2, "the API and the client app");
        assert!(state.owners.iter().all(|o| o.owner_id == principal));
        assert_eq!(state.app_role_assignments.len(), 1);
    }

    // The pipeline: a job in the `prod` environment plans with the identity's client id.
    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "environment": "prod", "event_name": "push" }),
    )
    .await;
    let vars = github_job(&client_id, &url, &request_token);
    let plan = [
        "plan",
        "--env",
        "local",
        "--auth",
        "github-oidc",
        "--detailed-exitcode",
    ];
    let (code, stdout, stderr) = run(&project, &plan, &vars).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let doctor = ["doctor", "--env", "local", "--auth", "github-oidc"];
    let (_, stdout, _) = run(&project, &doctor, &vars).await;
    assert!(
        stdout.contains(
            "ok      graph: the identity may create app registrations and change those it owns \
             (Graph Application.ReadWrite.OwnedBy)\n"
        ),
        "{stdout}"
    );

    // What its roles allow, and what they do not.
    let token = job_token(&url, &request_token).await;
    let (status, answer) = exchange(&sandbox, &client_id, &token).await;
    assert_eq!(status, 200, "{answer}");
    let access = answer["access_token"].as_str().unwrap().to_owned();
    let arm = |method: reqwest::Method, path: String, body: Value| {
        let access = access.clone();
        let url = format!("{base}{path}");
        async move {
            send(
                client()
                    .request(method, url)
                    .bearer_auth(access)
                    .json(&body),
            )
            .await
        }
    };
    let elsewhere = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-elsewhere");
    let (status, body) = arm(
        reqwest::Method::PUT,
        format!("{elsewhere}?api-version=2025-04-01"),
        json!({ "location": "swedencentral" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    assert_eq!(
        body["error"]["message"],
        json!(format!(
            "The client '{client_id}' with object id '{principal}' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '{elsewhere}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ))
    );
    let group = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}");
    let assign = |role: &str, name: &str| {
        (
            format!(
                "{group}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
            ),
            json!({ "properties": {
                "roleDefinitionId": format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
                "principalId": principal,
                "principalType": "ServicePrincipal",
            }}),
        )
    };
    let (path, body) = assign(OWNER, "00000000-0000-4000-8000-00000000a001");
    let (status, answer) = arm(reqwest::Method::PUT, path, body).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("AuthorizationFailed")),
        "{answer}"
    );
    let (path, body) = assign(OPENAI_USER, "00000000-0000-4000-8000-00000000a002");
    let (status, answer) = arm(reqwest::Method::PUT, path.clone(), body).await;
    assert_eq!(status, 201, "{answer}");
    let (status, _) = arm(reqwest::Method::DELETE, path, Value::Null).await;
    assert_eq!(status, 200);

    // In Graph: the apps it owns, and nothing else.
    let (status, answer) = crate::federated::exchange_for(
        &sandbox,
        &client_id,
        &token,
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let graph_token = answer["access_token"].as_str().unwrap().to_owned();
    let graph = |method: reqwest::Method, path: &str, body: Value| {
        let request = client()
            .request(method, format!("{base}/v1.0{path}"))
            .bearer_auth(&graph_token)
            .json(&body);
        send(request)
    };
    let (status, body) = graph(
        reqwest::Method::PATCH,
        "/applications(uniqueName='llm-gateway-api-local')",
        json!({ "notes": "deployed by the pipeline" }),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = graph(
        reqwest::Method::PATCH,
        &format!(
            "/applications(uniqueName='{}')",
            "llm-gateway-api-local-deploy"
        ),
        json!({ "notes": "not its own" }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"], &body["error"]["message"]),
        (
            403,
            &json!("Authorization_RequestDenied"),
            &json!("Insufficient privileges to complete the operation.")
        )
    );
    let (status, _) = graph(
        reqwest::Method::POST,
        &format!("/servicePrincipals/{principal}/appRoleAssignments"),
        json!({ "principalId": principal, "resourceId": "5a4d0000-0000-4000-8000-00000000a9a0",
                "appRoleId": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9" }),
    )
    .await;
    assert_eq!(status, 403, "it may not grant itself more");

    // A job from another environment: the exchange is refused, and the hint names its subject.
    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "environment": "staging", "event_name": "push" }),
    )
    .await;
    let vars = github_job(&client_id, &url, &request_token);
    let (code, _, stderr) = run(&project, &plan, &vars).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{base}/github-actions'. Assertion Subject: 'repo:Contoso/gw:environment:staging'. Assertion Audience: '{EXCHANGE}'."
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "hint: the app has no federated credential for subject `repo:Contoso/gw:environment:staging`"
        ) && stderr.contains(
            "`provision bootstrap github --env <env> --repo Contoso/gw --environment staging`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("eyJ"), "a token reached the output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_devops_service_connection_plans_with_its_token_file() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url().to_owned();
    let project = project_at(&sandbox.addr().to_string());
    let (code, _, stderr) = run(&project, &["up", "--env", "local", "--yes"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(
        &project,
        &[
            "bootstrap",
            "azure-devops",
            "--env",
            "local",
            "--org",
            "Contoso",
            "--project",
            "LLM Gateway",
            "--service-connection",
            "prod-deploy",
            "--output",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let made = json_line(&stdout);
    assert_eq!(made["subject"], "sc://Contoso/LLM Gateway/prod-deploy");
    let client_id = made["client_id"].as_str().unwrap().to_owned();

    let (status, answer) = send(
        client()
            .post(format!("{base}/_sandbox/azure-devops/oidc-token"))
            .json(&json!({ "organization": "Contoso", "project": "LLM Gateway", "service_connection": "prod-deploy" })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        crate::federated::claims(answer["token"].as_str().unwrap())["iss"],
        made["issuer"]
    );
    let file = project.path("ado-token");
    std::fs::write(&file, answer["token"].as_str().unwrap()).unwrap();
    let vars = [
        ("AZURE_CLIENT_ID", client_id.as_str()),
        ("AZURE_TENANT_ID", provision::sandbox::DEFAULT_TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
    ];
    let plan = [
        "plan",
        "--env",
        "local",
        "--auth",
        "workload-identity",
        "--detailed-exitcode",
    ];
    let (code, stdout, stderr) = run(&project, &plan, &vars).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // Ten minutes on, the token in the file has expired: AADSTS700024.
    sandbox
        .advance(provision::clock::SignedDuration::from_secs(601))
        .unwrap();
    let (code, _, stderr) = run(&project, &plan, &vars).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("AADSTS700024: Client assertion is not within its valid time range."),
        "{stderr}"
    );
}

#[test]
fn the_aadsts_helper_reads_the_first_line() {
    assert_eq!(
        aadsts(&json!({ "error_description": "AADSTS1: x\r\nTrace ID: y" })),
        "AADSTS1: x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_devops_on_azure_needs_the_organization_id_before_signing_in() {
    let project = Project::new();
    let args = [
        "bootstrap",
        "azure-devops",
        "--env",
        "dev",
        "--org",
        "Contoso",
        "--project",
        "LLM",
        "--service-connection",
        "prod",
    ];
    let (code, stdout, stderr) = run(&project, &args, &[]).await;
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stderr,
        "error: bootstrap azure-devops needs --org-id: Azure DevOps' token issuer names the \
         organization by its id\nhint: the organization id is on the service connection's page \
         in Azure DevOps (Project settings > Service connections > the connection > Edit: \
         'Issuer' ends in it); pass it with --org-id\n"
    );
    let (code, _, stderr) = run(
        &project,
        &[&args[..], &["--org-id", "not-a-guid"]].concat(),
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("`not-a-guid` is not a GUID"), "{stderr}");
}

/// A pull request's identity only plans: its workflow comes from the branch under review. It is
/// an app of its own (`-plan`), with Reader on the group and Graph's Application.Read.All, and
/// owns no app; `plan` works with it, `up` is refused at its first write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_identity_plans_and_cannot_write() {
    let sandbox = default_sandbox().await;
    let project = project_at(&sandbox.addr().to_string());
    let bootstrap = github_bootstrap(&["--pull-request", "--output", "json"]);
    // Before any `up`: bootstrap makes the group the roles are granted on, with the marks.
    let (code, stdout, stderr) = run(&project, &bootstrap, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let made = json_line(&stdout);
    assert_eq!(made["subject"], "repo:Contoso/gw:pull_request");
    assert_eq!(
        made["changes"],
        json!([
            "application llm-gateway-api-local-plan",
            "service principal of llm-gateway-api-local-plan",
            "federated credential for repo:Contoso/gw:pull_request",
            format!("resource group {GROUP}"),
            format!("Reader on {GROUP}"),
            "Microsoft Graph Application.Read.All (admin consent)",
        ]),
        "{made}"
    );
    let client_id = made["client_id"].as_str().unwrap().to_owned();
    {
        let state = sandbox.state();
        assert!(state.owners.is_empty(), "a plan identity owns no app");
        let group = format!("/subscriptions/{SUBSCRIPTION}/resourcegroups/{GROUP}");
        let tags = &state.arm.resources[&group].body["tags"];
        assert_eq!(tags["provision-env"], "local", "{tags}");
    }

    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "event_name": "pull_request" }),
    )
    .await;
    let vars = github_job(&client_id, &url, &request_token);
    let plan = [
        "plan",
        "--env",
        "local",
        "--auth",
        "github-oidc",
        "--detailed-exitcode",
    ];
    let (code, stdout, stderr) = run(&project, &plan, &vars).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    // doctor reads what it may do in the directory from its Graph token's `roles`.
    let doctor = ["doctor", "--env", "local", "--auth", "github-oidc"];
    let (code, stdout, stderr) = run(&project, &doctor, &vars).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "error   graph: the identity may read app registrations but not write them (Graph \
             Application.Read.All only): it can plan, not apply\n        hint: run `up` as a \
             deployment identity: `provision bootstrap github --env local --repo OWNER/REPO \
             --environment NAME` makes one, with Graph's Application.ReadWrite.OwnedBy\n"
        ),
        "{stdout}"
    );

    let before = last_seq(&sandbox);
    let up = [
        "up",
        "--env",
        "local",
        "--yes",
        "--auth",
        "github-oidc",
        "--skip-preflight",
    ];
    let (code, _, stderr) = run(&project, &up, &vars).await;
    assert_eq!(code, 1, "{stderr}");
    // Writes run concurrently, so which refusal stops the run first varies; each is a 403.
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains(" (HTTP 403): ")),
        "{stderr}"
    );
    // Every write it tried was refused: nothing it sent changed the sandbox.
    let refused_only = sandbox
        .requests()
        .iter()
        .filter(|r| r.seq > before && r.method != "GET" && !r.path.contains("/oauth2/"))
        .all(|r| r.status == 403);
    assert!(refused_only, "{:#?}", writes_since(&sandbox, before));
}

/// A deployment identity may delete what is in its group but not purge the soft-deleted copies
/// (the purge APIs are at the subscription): `down --purge` removes everything, says which
/// copies stay and why, and exits 1 because the purge asked for did not all happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_the_identity_may_not_make_is_left_and_said() {
    let sandbox = default_sandbox().await;
    let project = project_at(&sandbox.addr().to_string());
    let (code, _, stderr) = run(&project, &["up", "--env", "local", "--yes"], &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let bootstrap = github_bootstrap(&["--environment", "prod", "--output", "json"]);
    let (code, stdout, stderr) = run(&project, &bootstrap, &[]).await;
    assert_eq!(code, 0, "{stderr}");
    let client_id = json_line(&stdout)["client_id"].as_str().unwrap().to_owned();
    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "environment": "prod", "event_name": "push" }),
    )
    .await;
    let vars = github_job(&client_id, &url, &request_token);
    let down = [
        "down",
        "--env",
        "local",
        "--purge",
        "--yes",
        "--auth",
        "github-oidc",
    ];
    let (code, stdout, stderr) = run(&project, &down, &vars).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("left soft-deleted, holding their names:\n"),
        "{stdout}"
    );
    for copy in [
        "apim service apim-llmgw-local",
        "foundry account llmgw-foundry-local",
    ] {
        assert!(stdout.contains(&format!("\n  {copy}\n")), "{stdout}");
    }
    assert!(
        stderr.contains(
            "warning: apim service apim-llmgw-local: the purge of its soft-deleted copy was \
             refused: DELETE /subscriptions/"
        ),
        "{stderr}"
    );
    // The live resources are gone all the same.
    let state = sandbox.state();
    let service = format!(
        "/subscriptions/{SUBSCRIPTION}/resourcegroups/{GROUP}/providers/microsoft.apimanagement/service/apim-llmgw-local"
    );
    assert!(!state.arm.resources.contains_key(&service));
}

/// An app that already holds the deployment app's name but has a certificate (which bootstrap
/// never adds) may be someone else's: bootstrap refuses to give it rights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_app_with_credentials_is_not_adopted() {
    let sandbox = default_sandbox().await;
    let project = project_at(&sandbox.addr().to_string());
    let graph = crate::sandbox_support::token(&sandbox, 0, "https://graph.microsoft.com");
    let (status, body) = send(
        client()
            .patch(format!(
                "{}/v1.0/applications(uniqueName='llm-gateway-api-local-deploy')",
                sandbox.base_url()
            ))
            .bearer_auth(graph)
            .header("prefer", "create-if-missing")
            .json(&json!({
                "displayName": "LLM Gateway API (local) deployments",
                "keyCredentials": [{
                    "type": "AsymmetricX509Cert", "usage": "Verify",
                    "key": "TUlJQ3lqQ0NBYktnQXdJQkFnSVFF", "displayName": "CN=someone"
                }],
            })),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let before = last_seq(&sandbox);
    let bootstrap = github_bootstrap(&["--environment", "prod"]);
    let (code, _, stderr) = run(&project, &bootstrap, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: application llm-gateway-api-local-deploy already exists with a client secret \
             or certificate, which bootstrap never adds"
        ),
        "{stderr}"
    );
    // Refused before anything was written: no group, credential, role or permission.
    assert_eq!(writes_since(&sandbox, before), Vec::<String>::new());
}
