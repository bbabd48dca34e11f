//! Workload identity federation in the sandbox: Graph `federatedIdentityCredentials`, the GitHub
//! Actions and Azure DevOps OIDC issuers, and the token endpoint exchanging their tokens
//! (`client_assertion`) for Entra tokens only when a credential matches.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use provision::clock::SignedDuration;
use provision::sandbox::{DEFAULT_TENANT, Sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use crate::sandbox_support::{client, default_sandbox, token};

const GRAPH: &str = "https://graph.microsoft.com";
pub const EXCHANGE: &str = "api://AzureADTokenExchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Status and JSON body of one exchange (`Null` for an empty body).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (status, body)
}

/// A Graph call as the operator would make it (a tenant token for Graph).
pub async fn graph(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let request = client()
        .request(method, format!("{}/v1.0{path}", sandbox.base_url()))
        .bearer_auth(token(sandbox, 0, GRAPH));
    send(match body {
        Some(body) => request.json(&body),
        None => request,
    })
    .await
}

/// A new application and its service principal: (object id, app id, SP id).
pub async fn app_with_principal(sandbox: &Sandbox, name: &str) -> (String, String, String) {
    let (status, app) = graph(
        sandbox,
        Method::POST,
        "/applications",
        Some(json!({ "displayName": name })),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["appId"].as_str().unwrap().to_owned();
    let (status, sp) = graph(
        sandbox,
        Method::POST,
        "/servicePrincipals",
        Some(json!({ "appId": app_id })),
    )
    .await;
    assert_eq!(status, 201, "{sp}");
    (
        app["id"].as_str().unwrap().to_owned(),
        app_id,
        sp["id"].as_str().unwrap().to_owned(),
    )
}

fn credential(name: &str, issuer: &str, subject: &str) -> Value {
    json!({ "name": name, "issuer": issuer, "subject": subject, "audiences": [EXCHANGE] })
}

/// The claims of a compact JWT, read without checking it.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

/// Starts a GitHub Actions job: (request URL, request token).
pub async fn job(sandbox: &Sandbox, body: Value) -> (String, String) {
    let (status, answer) = send(
        client()
            .post(format!(
                "{}/_sandbox/github-actions/jobs",
                sandbox.base_url()
            ))
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    (
        answer["request_url"].as_str().unwrap().to_owned(),
        answer["request_token"].as_str().unwrap().to_owned(),
    )
}

/// The job's OIDC token for the exchange audience, fetched as the runner's toolkit does.
pub async fn job_token(url: &str, request_token: &str) -> String {
    let (status, answer) = send(
        client()
            .get(format!("{url}&audience={EXCHANGE}"))
            .header("Authorization", format!("bearer {request_token}")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let value = answer["value"].as_str().unwrap().to_owned();
    assert_eq!(answer["count"], json!(value.len()));
    value
}

pub async fn exchange(sandbox: &Sandbox, client_id: &str, assertion: &str) -> (u16, Value) {
    exchange_for(
        sandbox,
        client_id,
        assertion,
        "https://management.azure.com/.default",
    )
    .await
}

/// The exchange for another scope (Graph's `.default`…).
pub async fn exchange_for(
    sandbox: &Sandbox,
    client_id: &str,
    assertion: &str,
    scope: &str,
) -> (u16, Value) {
    send(
        client()
            .post(format!(
                "{}/{DEFAULT_TENANT}/oauth2/v2.0/token",
                sandbox.base_url()
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("scope", scope),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ]),
    )
    .await
}

/// The AADSTS text of an Entra error, without its trace lines.
pub fn aadsts(body: &Value) -> &str {
    let description = body["error_description"].as_str().unwrap_or_default();
    description.split("\r\n").next().unwrap_or_default()
}

#[tokio::test]
async fn federated_credentials_follow_graphs_rules() {
    let sandbox = default_sandbox().await;
    let (app, _, _) = app_with_principal(&sandbox, "deploy").await;
    let base = format!("/applications/{app}/federatedIdentityCredentials");
    let issuer = "https://token.actions.githubusercontent.com";

    let (status, created) = graph(
        &sandbox,
        Method::POST,
        &base,
        Some(credential(
            "gh-prod",
            issuer,
            "repo:Contoso/gw:environment:prod",
        )),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["@odata.context"],
        json!(format!(
            "{}/v1.0/$metadata#applications('{app}')/federatedIdentityCredentials/$entity",
            sandbox.base_url()
        ))
    );
    assert_eq!(created["audiences"], json!([EXCHANGE]));
    assert_eq!(created["description"], Value::Null);

    let (status, list) = graph(&sandbox, Method::GET, &base, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (status, by_name) = graph(
        &sandbox,
        Method::GET,
        &format!("{base}(name='gh-prod')"),
        None,
    )
    .await;
    assert_eq!((status, by_name["id"].as_str()), (200, Some(id.as_str())));

    // The name is unique per app (409), so is issuer + subject (400), and one audience exactly.
    let (status, body) = graph(
        &sandbox,
        Method::POST,
        &base,
        Some(credential(
            "gh-prod",
            issuer,
            "repo:Contoso/gw:pull_request",
        )),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"], &body["error"]["message"]),
        (
            409,
            &json!("Request_MultipleObjectsWithSameKeyValue"),
            &json!("FederatedIdentityCredential with name gh-prod already exists.")
        )
    );
    let (status, body) = graph(
        &sandbox,
        Method::POST,
        &base,
        Some(credential(
            "other",
            issuer,
            "repo:Contoso/gw:environment:prod",
        )),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["code"],
        "InvalidFederatedIdentityCredentialValue"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with(
            "The combination of issuer and subject must be unique for the application."
        )
    );
    let mut two = credential("two", issuer, "repo:Contoso/gw:pull_request");
    two["audiences"] = json!([EXCHANGE, "api://other"]);
    let (status, body) = graph(&sandbox, Method::POST, &base, Some(two)).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (
            400,
            &json!("Federated identity credentials must have exactly 1 audience.")
        )
    );
    // A subject differing only in case is another subject.
    let (status, _) = graph(
        &sandbox,
        Method::POST,
        &base,
        Some(credential(
            "lower",
            issuer,
            "repo:contoso/gw:environment:prod",
        )),
    )
    .await;
    assert_eq!(status, 201);

    // PATCH changes what may change; the name is immutable.
    let (status, _) = graph(
        &sandbox,
        Method::PATCH,
        &format!("{base}/{id}"),
        Some(json!({ "description": "prod deployments" })),
    )
    .await;
    assert_eq!(status, 204);
    let (_, read) = graph(&sandbox, Method::GET, &format!("{base}/{id}"), None).await;
    assert_eq!(read["description"], "prod deployments");
    let (status, _) = graph(
        &sandbox,
        Method::PATCH,
        &format!("{base}/{id}"),
        Some(json!({ "name": "renamed" })),
    )
    .await;
    assert_eq!(status, 400);

    // At most 20 per application.
    for i in 2..20 {
        let (status, body) = graph(
            &sandbox,
            Method::POST,
            &base,
            Some(credential(&format!("c{i}"), issuer, &format!("s{i}"))),
        )
        .await;
        assert_eq!(status, 201, "{i}: {body}");
    }
    let (status, body) = graph(
        &sandbox,
        Method::POST,
        &base,
        Some(credential("c20", issuer, "s20")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "An application can have at most 20 federated identity credentials."
    );

    let (status, _) = graph(&sandbox, Method::DELETE, &format!("{base}/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = graph(&sandbox, Method::GET, &format!("{base}/{id}"), None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("Request_ResourceNotFound"))
    );
    let missing = "00000000-0000-4000-8000-000000000099";
    let (status, _) = graph(
        &sandbox,
        Method::GET,
        &format!("/applications/{missing}/federatedIdentityCredentials"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_github_job_gets_githubs_claims_signed_by_the_issuers_own_key() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url().to_owned();
    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "environment": "prod", "ref": "refs/heads/main", "event_name": "push" }),
    )
    .await;
    assert!(url.starts_with(&format!("{base}/github-actions/")), "{url}");
    assert!(url.contains('?'), "the runner appends &audience=: {url}");
    let before = sandbox.now().as_second();
    let jwt = job_token(&url, &request_token).await;
    let after = sandbox.now().as_second();
    let c = claims(&jwt);
    assert_eq!(c["iss"], json!(format!("{base}/github-actions")));
    assert_eq!(c["sub"], "repo:Contoso/gw:environment:prod");
    assert_eq!(c["aud"], EXCHANGE);
    assert_eq!(c["repository"], "Contoso/gw");
    assert_eq!(c["environment"], "prod");
    assert_eq!(c["ref"], "refs/heads/main");
    assert_eq!(c["event_name"], "push");
    let iat = c["iat"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} is the sandbox's now"
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);

    let (status, discovery) = send(client().get(format!(
        "{base}/github-actions/.well-known/openid-configuration"
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(discovery["issuer"], c["iss"]);
    let (_, jwks) = send(client().get(discovery["jwks_uri"].as_str().unwrap())).await;
    let kid = header(&jwt)["kid"].clone();
    assert_eq!(jwks["keys"][0]["kid"], kid);
    let tenant_kids: Vec<String> = sandbox
        .state()
        .tenants
        .iter()
        .flat_map(|t| t.keys.iter().map(|k| k.kid.clone()))
        .collect();
    assert!(
        !tenant_kids.contains(&kid.as_str().unwrap().to_owned()),
        "not a tenant's key"
    );

    // Pull requests and plain refs have their own subjects.
    for (body, subject) in [
        (
            json!({ "repository": "Contoso/gw", "environment": null, "ref": "refs/pull/7/merge", "event_name": "pull_request" }),
            "repo:Contoso/gw:pull_request",
        ),
        (
            json!({ "repository": "Contoso/gw", "ref": "refs/heads/main", "event_name": "schedule" }),
            "repo:Contoso/gw:ref:refs/heads/main",
        ),
    ] {
        let (url, request_token) = job(&sandbox, body).await;
        assert_eq!(
            claims(&job_token(&url, &request_token).await)["sub"],
            subject
        );
    }

    // The request token is the job's alone.
    let (status, _) = send(
        client()
            .get(format!("{url}&audience={EXCHANGE}"))
            .bearer_auth("guess"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(client().get(format!("{url}&audience={EXCHANGE}"))).await;
    assert_eq!(status, 401);
    let (status, body) = send(
        client()
            .post(format!("{base}/_sandbox/github-actions/jobs"))
            .json(&json!({ "repository": "not a repo", "event_name": "push" })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // The admin guard: another site's page cannot start a job or mint a token.
    for path in ["github-actions/jobs", "azure-devops/oidc-token"] {
        let (status, _) = send(
            client()
                .post(format!("{base}/_sandbox/{path}"))
                .header("Origin", "https://evil.example")
                .json(&json!({ "repository": "Contoso/gw" })),
        )
        .await;
        assert_eq!(status, 403, "{path}");
    }
}

#[tokio::test]
async fn a_job_token_is_exchanged_only_under_a_matching_credential() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url().to_owned();
    let (app, app_id, sp) = app_with_principal(&sandbox, "deploy").await;
    let (status, _) = graph(
        &sandbox,
        Method::POST,
        &format!("/applications/{app}/federatedIdentityCredentials"),
        Some(credential(
            "gh-prod",
            &format!("{base}/github-actions"),
            "repo:Contoso/gw:environment:prod",
        )),
    )
    .await;
    assert_eq!(status, 201);

    let (url, request_token) = job(
        &sandbox,
        json!({ "repository": "Contoso/gw", "environment": "prod", "event_name": "push" }),
    )
    .await;
    let assertion = job_token(&url, &request_token).await;
    let (status, answer) = exchange(&sandbox, &app_id, &assertion).await;
    assert_eq!(status, 200, "{answer}");
    let access = answer["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!(
        (
            &c["appid"],
            &c["oid"],
            &c["aud"],
            &c["idtyp"],
            &c["appidacr"]
        ),
        (
            &json!(app_id),
            &json!(sp),
            &json!("https://management.azure.com/"),
            &json!("app"),
            &json!("2")
        )
    );
    // The token works where Entra's would: ARM reads the subscription with it.
    let (status, _) = send(
        client()
            .get(format!(
                "{base}/subscriptions/{}?api-version=2022-12-01",
                provision::sandbox::DEFAULT_SUBSCRIPTION
            ))
            .bearer_auth(access),
    )
    .await;
    assert_eq!(status, 200);

    // Another subject (the same repository in another environment, or another case): AADSTS70021.
    for (repository, environment) in [("Contoso/gw", "staging"), ("contoso/gw", "prod")] {
        let (url, request_token) = job(
            &sandbox,
            json!({ "repository": repository, "environment": environment, "event_name": "push" }),
        )
        .await;
        let (status, answer) =
            exchange(&sandbox, &app_id, &job_token(&url, &request_token).await).await;
        assert_eq!((status, &answer["error"]), (400, &json!("invalid_request")));
        assert_eq!(answer["error_codes"], json!([70021]));
        assert_eq!(
            aadsts(&answer),
            format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{base}/github-actions'. Assertion Subject: 'repo:{repository}:environment:{environment}'. Assertion Audience: '{EXCHANGE}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation"
            )
        );
    }

    // A tampered token: the subject is right, the signature is not.
    let mut parts: Vec<String> = assertion.split('.').map(str::to_owned).collect();
    let mut forged = claims(&assertion);
    forged["ref"] = json!("refs/heads/evil");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    let (status, answer) = exchange(&sandbox, &app_id, &parts.join(".")).await;
    assert_eq!(
        (status, &answer["error_codes"]),
        (401, &json!([50013])),
        "{answer}"
    );

    // Unknown client.
    let (status, answer) =
        exchange(&sandbox, "00000000-0000-4000-8000-0000000000aa", &assertion).await;
    assert_eq!((status, &answer["error_codes"]), (400, &json!([700016])));

    // Five minutes on, the same token is expired.
    sandbox.advance(SignedDuration::from_secs(301)).unwrap();
    let (status, answer) = exchange(&sandbox, &app_id, &assertion).await;
    assert_eq!((status, &answer["error"]), (401, &json!("invalid_client")));
    assert!(
        aadsts(&answer).starts_with(
            "AADSTS700024: Client assertion is not within its valid time range. Current time: "
        ),
        "{answer}"
    );
}

#[tokio::test]
async fn an_azure_devops_service_connection_token_is_exchanged_under_its_credential() {
    let sandbox = default_sandbox().await;
    let base = sandbox.base_url().to_owned();
    let (status, answer) = send(
        client()
            .post(format!("{base}/_sandbox/azure-devops/oidc-token"))
            .json(&json!({ "organization": "Contoso", "project": "LLM Gateway", "service_connection": "prod-deploy" })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let token = answer["token"].as_str().unwrap();
    let c = claims(token);
    let iss = c["iss"].as_str().unwrap().to_owned();
    let org_id = iss
        .strip_prefix(&format!("{base}/azure-devops/"))
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&org_id).is_ok(), "{iss}");
    assert_eq!(c["sub"], "sc://Contoso/LLM Gateway/prod-deploy");
    assert_eq!(c["aud"], EXCHANGE);
    let (status, discovery) =
        send(client().get(format!("{iss}/.well-known/openid-configuration"))).await;
    assert_eq!((status, &discovery["issuer"]), (200, &json!(iss)));

    let (app, app_id, _) = app_with_principal(&sandbox, "deploy").await;
    let (status, answer) = exchange(&sandbox, &app_id, token).await;
    assert_eq!((status, &answer["error_codes"]), (400, &json!([70021])));
    let (status, _) = graph(
        &sandbox,
        Method::POST,
        &format!("/applications/{app}/federatedIdentityCredentials"),
        Some(credential(
            "ado",
            &iss,
            "sc://Contoso/LLM Gateway/prod-deploy",
        )),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = exchange(&sandbox, &app_id, token).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = send(
        client()
            .post(format!("{base}/_sandbox/azure-devops/oidc-token"))
            .json(
                &json!({ "organization": "bad org!", "project": "p", "service_connection": "c" }),
            ),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn application_owners_are_added_once_listed_and_removed() {
    let sandbox = default_sandbox().await;
    let (app, _, _) = app_with_principal(&sandbox, "gateway-api").await;
    let (_, _, owner) = app_with_principal(&sandbox, "deploy").await;
    let reference = json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{owner}") });
    let add = format!("/applications/{app}/owners/$ref");
    let (status, body) = graph(&sandbox, Method::POST, &add, Some(reference.clone())).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = graph(&sandbox, Method::POST, &add, Some(reference)).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (
            400,
            &json!(
                "One or more added object references already exist for the following modified properties: 'owners'."
            )
        )
    );
    let (status, list) = graph(
        &sandbox,
        Method::GET,
        &format!("/applications/{app}/owners"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"][0]["id"], json!(owner));
    assert_eq!(
        list["value"][0]["@odata.type"],
        "#microsoft.graph.servicePrincipal"
    );
    let stranger = "00000000-0000-4000-8000-0000000000bb";
    let (status, _) = graph(
        &sandbox,
        Method::POST,
        &add,
        Some(json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{stranger}") })),
    )
    .await;
    assert_eq!(status, 404);
    let remove = format!("/applications/{app}/owners/{owner}/$ref");
    let (status, _) = graph(&sandbox, Method::DELETE, &remove, None).await;
    assert_eq!(status, 204);
    let (status, _) = graph(&sandbox, Method::DELETE, &remove, None).await;
    assert_eq!(status, 404);
    let (_, list) = graph(
        &sandbox,
        Method::GET,
        &format!("/applications/{app}/owners"),
        None,
    )
    .await;
    assert_eq!(list["value"], json!([]));
}

#[tokio::test]
async fn an_app_with_owned_by_writes_only_the_apps_it_owns() {
    let sandbox = default_sandbox().await;
    let (_, _, deployer) = app_with_principal(&sandbox, "deploy").await;
    let (other, _, _) = app_with_principal(&sandbox, "someone-elses").await;
    let as_deployer = crate::sandbox_support::token_with(
        &sandbox,
        0,
        json!({ "aud": GRAPH, "oid": deployer, "idtyp": "app" }),
    );
    let deployer_graph = |method: Method, path: String, body: Value| {
        let request = client()
            .request(method, format!("{}/v1.0{path}", sandbox.base_url()))
            .bearer_auth(&as_deployer)
            .json(&body);
        send(request)
    };
    let new_app = json!({ "displayName": "made by the pipeline" });
    let (status, body) =
        deployer_graph(Method::POST, "/applications".into(), new_app.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("Authorization_RequestDenied")),
        "no permission yet"
    );

    let (status, graph_sp) = graph(
        &sandbox,
        Method::GET,
        "/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let role = graph_sp["appRoles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == "Application.ReadWrite.OwnedBy")
        .unwrap()["id"]
        .clone();
    assert_eq!(role, "18a4783c-866b-4cc7-a460-3d5e5662c884");
    let grant = json!({ "principalId": deployer, "resourceId": graph_sp["id"], "appRoleId": role });
    let path = format!("/servicePrincipals/{deployer}/appRoleAssignments");
    let (status, body) = deployer_graph(Method::POST, path.clone(), grant.clone()).await;
    assert_eq!(status, 403, "it may not consent for itself: {body}");
    let (status, body) = graph(&sandbox, Method::POST, &path, Some(grant.clone())).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = graph(&sandbox, Method::POST, &path, Some(grant)).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (
            400,
            &json!("Permission being assigned already exists on the object")
        )
    );

    let (status, made) = deployer_graph(Method::POST, "/applications".into(), new_app).await;
    assert_eq!(status, 201, "{made}");
    let mine = made["id"].as_str().unwrap();
    let (_, owners) = graph(
        &sandbox,
        Method::GET,
        &format!("/applications/{mine}/owners"),
        None,
    )
    .await;
    assert_eq!(owners["value"][0]["id"], json!(deployer));
    let (status, _) = deployer_graph(
        Method::PATCH,
        format!("/applications/{mine}"),
        json!({ "notes": "mine" }),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = deployer_graph(
        Method::PATCH,
        format!("/applications/{other}"),
        json!({ "notes": "not mine" }),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = deployer_graph(
        Method::POST,
        format!("/applications/{other}/federatedIdentityCredentials"),
        credential("sneak", "https://issuer", "subject"),
    )
    .await;
    assert_eq!(status, 403);
}
