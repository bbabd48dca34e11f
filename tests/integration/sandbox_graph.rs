//! Microsoft Graph endpoints of the sandbox, over HTTP: applications and their upsert, filters,
//! the deleted-items bin, service principals, replication lag, and Graph's error shape.
//!
//! Tokens are minted here from the tenant's stored key, so these tests don't depend on the login
//! endpoints.

use provision::clock::SignedDuration;
use provision::sandbox::{DEFAULT_TENANT, FaultScript, Sandbox, SandboxConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::sandbox_support::{client, default_sandbox, start, token};

const GRAPH: &str = "https://graph.microsoft.com";
const SCOPE_ID: &str = "7b3f2a10-1111-4c4c-9a9a-000000000001";
const CLIENT_APP: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Status, `error.code` and `error.message` of a Graph error.
    fn error(&self) -> (u16, &str, &str) {
        (
            self.status,
            self.body["error"]["code"].as_str().unwrap_or_default(),
            self.body["error"]["message"].as_str().unwrap_or_default(),
        )
    }

    fn ids(&self) -> Vec<&str> {
        self.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap())
            .collect()
    }
}

struct Graph {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Graph {
    fn new(sandbox: &Sandbox) -> Graph {
        Graph::with_token(sandbox, Some(token(sandbox, 0, GRAPH)))
    }

    fn with_token(sandbox: &Sandbox, token: Option<String>) -> Graph {
        Graph {
            http: client(),
            base: format!("{}/v1.0", sandbox.base_url()),
            token,
        }
    }

    fn url(&self, path: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("{}{path}", self.base)).unwrap()
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request_url(method, self.url(path))
    }

    fn request_url(&self, method: Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn answer(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        Graph::answer(self.request(Method::GET, path)).await
    }

    async fn filter(&self, path: &str, filter: &str) -> Answer {
        let mut url = self.url(path);
        url.query_pairs_mut().append_pair("$filter", filter);
        Graph::answer(self.request_url(Method::GET, url)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        Graph::answer(self.request(Method::POST, path).json(&body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        Graph::answer(self.request(Method::PATCH, path).json(&body)).await
    }

    async fn upsert(&self, path: &str, body: Value) -> Answer {
        Graph::answer(
            self.request(Method::PATCH, path)
                .header("Prefer", "create-if-missing")
                .json(&body),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Answer {
        Graph::answer(self.request(Method::DELETE, path)).await
    }

    /// Creates an app and returns its body.
    async fn app(&self, body: Value) -> Value {
        let created = self.post("/applications", body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        created.body
    }
}

fn not_found(what: &str) -> String {
    format!(
        "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
    )
}

fn scope(enabled: bool) -> Value {
    json!({
        "id": SCOPE_ID,
        "value": "llm.invoke",
        "type": "User",
        "isEnabled": enabled,
        "adminConsentDisplayName": "Invoke LLM gateway",
        "adminConsentDescription": "Invoke the gateway",
        "userConsentDisplayName": "Invoke LLM gateway",
        "userConsentDescription": "Invoke the gateway",
    })
}

fn is_guid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 36 && s.split('-').count() == 5)
}

#[tokio::test]
async fn applications_are_created_with_graph_defaults_and_read_back_by_every_key() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let base = sandbox.base_url();

    let created = graph
        .post("/applications", json!({"displayName": "gateway"}))
        .await;
    assert_eq!(created.status, 201);
    let app = &created.body;
    assert_eq!(
        app["@odata.context"],
        format!("{base}/v1.0/$metadata#applications/$entity")
    );
    assert!(is_guid(&app["id"]) && is_guid(&app["appId"]), "{app}");
    assert_ne!(app["id"], app["appId"]);
    assert_eq!(app["displayName"], "gateway");
    assert_eq!(app["signInAudience"], "AzureADandPersonalMicrosoftAccount");
    assert_eq!(app["isFallbackPublicClient"], Value::Null);
    assert_eq!(app["identifierUris"], json!([]));
    assert_eq!(
        app["api"],
        json!({
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
            "requestedAccessTokenVersion": 2,
        })
    );
    assert_eq!(app["publicClient"], json!({"redirectUris": []}));
    assert_eq!(app["requiredResourceAccess"], json!([]));
    assert_eq!(app["tags"], json!([]));
    assert_eq!(app["uniqueName"], Value::Null);
    assert_eq!(app["deletedDateTime"], Value::Null);
    assert_eq!(app["publisherDomain"], "sandbox.onmicrosoft.com");
    let created_at = app["createdDateTime"].as_str().unwrap();
    assert_eq!(created_at.len(), 20, "{created_at}");
    assert!(created_at.starts_with("20") && created_at.ends_with('Z'));

    let id = app["id"].as_str().unwrap();
    let app_id = app["appId"].as_str().unwrap();
    let by_id = graph.get(&format!("/applications/{id}")).await;
    assert_eq!((by_id.status, &by_id.body), (200, app));
    let by_app_id = graph.get(&format!("/applications(appId='{app_id}')")).await;
    assert_eq!((by_app_id.status, &by_app_id.body), (200, app));
    let missing = graph.get("/applications(uniqueName='gateway')").await;
    assert_eq!(
        missing.error(),
        (
            404,
            "Request_ResourceNotFound",
            not_found("gateway").as_str()
        )
    );

    // Single tenant apps keep the token version unset; a uniqueName can be given on create.
    let mine = graph
        .app(json!({"displayName": "mine", "signInAudience": "AzureADMyOrg", "uniqueName": "mine-1", "isFallbackPublicClient": true}))
        .await;
    assert_eq!(mine["api"]["requestedAccessTokenVersion"], Value::Null);
    assert_eq!(mine["isFallbackPublicClient"], true);
    let by_name = graph.get("/applications(uniqueName='mine-1')").await;
    assert_eq!((by_name.status, &by_name.body), (200, &mine));
    let selected = graph
        .get(&format!("/applications/{id}?$select=appId,displayName"))
        .await;
    assert_eq!(
        selected.body,
        json!({"@odata.context": format!("{base}/v1.0/$metadata#applications/$entity"), "appId": app_id, "displayName": "gateway"})
    );

    let state = sandbox.state();
    assert_eq!(state.objects.len(), 2);
    assert_eq!(state.objects[0].tenant_id, DEFAULT_TENANT);
    assert_eq!(state.objects[0].id(), id);
}

#[tokio::test]
async fn bad_application_writes_are_refused_with_graph_errors() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let nameless = graph
        .post("/applications", json!({"signInAudience": "AzureADMyOrg"}))
        .await;
    assert_eq!(
        nameless.error(),
        (
            400,
            "Request_BadRequest",
            "Property 'displayName' is required when creating an application."
        )
    );
    let typo = graph
        .post(
            "/applications",
            json!({"displayName": "x", "isFallbackPublicClinet": true}),
        )
        .await;
    assert_eq!(
        typo.error(),
        (
            400,
            "Request_BadRequest",
            "Property 'isFallbackPublicClinet' does not exist as a declared property or extension property."
        )
    );
    let audience = graph
        .post(
            "/applications",
            json!({"displayName": "x", "signInAudience": "Everyone"}),
        )
        .await;
    assert_eq!(
        audience.error(),
        (
            400,
            "Request_BadRequest",
            "Invalid value specified for property 'signInAudience' of resource 'Application'."
        )
    );
    let app = graph.app(json!({"displayName": "x"})).await;
    let id = app["id"].as_str().unwrap();
    let read_only = graph
        .patch(
            &format!("/applications/{id}"),
            json!({"appId": "0c1d0000-0000-4000-8000-00000000000f"}),
        )
        .await;
    assert_eq!(
        read_only.error(),
        (
            400,
            "Request_BadRequest",
            "Property 'appId' is read-only and cannot be set."
        )
    );
    // A read-modify-write of the whole object is fine.
    let mut whole = app.clone();
    whole.as_object_mut().unwrap().remove("@odata.context");
    whole["displayName"] = json!("y");
    assert_eq!(
        graph
            .patch(&format!("/applications/{id}"), whole)
            .await
            .status,
        204
    );
    let unreadable = Graph::answer(
        graph
            .request(Method::POST, "/applications")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(
        unreadable.error(),
        (
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."
        )
    );
    let bad_id = graph.get("/applications/not-a-guid").await;
    assert_eq!(
        bad_id.error(),
        (
            400,
            "Request_BadRequest",
            "Invalid object identifier 'not-a-guid'."
        )
    );
    let segment = graph.get("/me").await;
    assert_eq!(
        segment.error(),
        (
            400,
            "BadRequest",
            "Resource not found for the segment 'me'."
        )
    );
    let method = Graph::answer(graph.request(Method::PUT, "/applications")).await;
    assert_eq!(method.status, 405);
    assert_eq!(sandbox.state().objects.len(), 1);
}

#[tokio::test]
async fn filters_find_apps_by_each_supported_form() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let one = graph
        .app(json!({"displayName": "gateway-one", "uniqueName": "gw-1", "identifierUris": ["api://gw-one"]}))
        .await;
    let two = graph.app(json!({"displayName": "gateway-two"})).await;
    let other = graph
        .app(json!({"displayName": "other", "tags": ["provision:dev"]}))
        .await;
    let (one_id, two_id, other_id) = (
        one["id"].as_str().unwrap(),
        two["id"].as_str().unwrap(),
        other["id"].as_str().unwrap(),
    );

    let all = graph.get("/applications").await;
    assert_eq!(all.status, 200);
    assert_eq!(
        all.body["@odata.context"],
        format!("{}/v1.0/$metadata#applications", sandbox.base_url())
    );
    assert_eq!(all.ids(), [one_id, two_id, other_id]);

    let cases = [
        (
            format!("appId eq '{}'", one["appId"].as_str().unwrap()),
            vec![one_id],
        ),
        ("displayName eq 'GATEWAY-TWO'".to_owned(), vec![two_id]),
        ("uniqueName eq 'gw-1'".to_owned(), vec![one_id]),
        (
            "startswith(displayName,'gateway')".to_owned(),
            vec![one_id, two_id],
        ),
        (
            "identifierUris/any(x:x eq 'api://gw-one')".to_owned(),
            vec![one_id],
        ),
        (
            "tags/any(t:t eq 'provision:dev')".to_owned(),
            vec![other_id],
        ),
        (
            "displayName eq 'other' or uniqueName eq 'gw-1'".to_owned(),
            vec![one_id, other_id],
        ),
    ];
    for (filter, expected) in cases {
        let found = graph.filter("/applications", &filter).await;
        assert_eq!(found.status, 200, "{filter}: {}", found.body);
        assert_eq!(found.ids(), expected, "{filter}");
    }

    let none = graph
        .filter(
            "/applications",
            "appId eq '00000000-0000-0000-0000-000000000000'",
        )
        .await;
    assert_eq!(
        (none.status, &none.body),
        (
            200,
            &json!({"@odata.context": format!("{}/v1.0/$metadata#applications", sandbox.base_url()), "value": []})
        )
    );

    let unsupported = graph
        .filter("/applications", "identifierUris eq 'api://gw-one'")
        .await;
    assert_eq!(
        unsupported.error(),
        (
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'identifierUris' of resource 'Application'."
        )
    );
    let function = graph
        .filter("/applications", "contains(displayName,'way')")
        .await;
    assert_eq!(function.error().0, 400);
    assert_eq!(function.error().1, "Request_UnsupportedQuery");
    let syntax = graph.filter("/applications", "appId eq 'open").await;
    assert_eq!(syntax.error().1, "BadRequest");
}

#[tokio::test]
async fn the_upsert_creates_then_updates_and_needs_prefer_to_create() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let path = "/applications(uniqueName='provision-llm-gw-dev')";
    let body = json!({"displayName": "llm-gw-dev", "signInAudience": "AzureADMyOrg", "isFallbackPublicClient": true});

    let created = graph.upsert(path, body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["uniqueName"], "provision-llm-gw-dev");
    assert_eq!(created.body["displayName"], "llm-gw-dev");
    assert_eq!(
        created.body["@odata.context"],
        format!("{}/v1.0/$metadata#applications/$entity", sandbox.base_url())
    );

    let updated = graph
        .upsert(
            path,
            json!({"displayName": "llm-gw-dev 2", "tags": ["provision"]}),
        )
        .await;
    assert_eq!((updated.status, &updated.body), (204, &Value::Null));
    let read = graph.get(path).await;
    assert_eq!(read.body["id"], created.body["id"]);
    assert_eq!(read.body["displayName"], "llm-gw-dev 2");
    assert_eq!(read.body["tags"], json!(["provision"]));
    assert_eq!(
        read.body["isFallbackPublicClient"], true,
        "untouched properties stay"
    );

    let without_prefer = graph
        .patch("/applications(uniqueName='not-there')", body.clone())
        .await;
    assert_eq!(
        without_prefer.error(),
        (
            404,
            "Request_ResourceNotFound",
            not_found("not-there").as_str()
        )
    );
    let nameless = graph
        .upsert("/applications(uniqueName='nameless')", json!({"tags": []}))
        .await;
    assert_eq!(nameless.error().0, 400);
    assert_eq!(nameless.error().1, "Request_BadRequest");

    // Only uniqueName upserts; other keys are plain updates.
    let id = created.body["id"].as_str().unwrap();
    let app_id = created.body["appId"].as_str().unwrap();
    assert_eq!(
        graph
            .patch(&format!("/applications/{id}"), json!({"notes": "a"}))
            .await
            .status,
        204
    );
    assert_eq!(
        graph
            .upsert(
                &format!("/applications(appId='{app_id}')"),
                json!({"notes": "b"})
            )
            .await
            .status,
        204
    );
    assert_eq!(
        graph.get(&format!("/applications/{id}")).await.body["notes"],
        "b"
    );
    let unknown = graph
        .upsert(
            "/applications(appId='0c1d0000-0000-4000-8000-0000000000aa')",
            body,
        )
        .await;
    assert_eq!(unknown.error().0, 404);
    assert_eq!(sandbox.state().objects.len(), 1);
}

#[tokio::test]
async fn unique_name_is_set_once_and_unique() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let app = graph.app(json!({"displayName": "x"})).await;
    let path = format!("/applications/{}", app["id"].as_str().unwrap());

    assert_eq!(
        graph
            .patch(&path, json!({"uniqueName": "first"}))
            .await
            .status,
        204
    );
    assert_eq!(
        graph.get("/applications(uniqueName='first')").await.status,
        200
    );
    let changed = graph.patch(&path, json!({"uniqueName": "second"})).await;
    assert_eq!(
        changed.error(),
        (
            400,
            "Request_BadRequest",
            "Property 'uniqueName' can be set only once and is immutable afterwards."
        )
    );
    assert_eq!(
        graph
            .patch(&path, json!({"uniqueName": "first"}))
            .await
            .status,
        204
    );
    let via_url = graph
        .upsert(
            "/applications(uniqueName='first')",
            json!({"uniqueName": "other"}),
        )
        .await;
    assert_eq!(via_url.error().0, 400);
    assert_eq!(graph.get(&path).await.body["uniqueName"], "first");

    let taken = graph
        .post(
            "/applications",
            json!({"displayName": "y", "uniqueName": "FIRST"}),
        )
        .await;
    assert_eq!(
        taken.error(),
        (
            400,
            "Request_BadRequest",
            "Another object with the same value for property uniqueName already exists."
        )
    );
}

#[tokio::test]
async fn deleted_apps_go_to_the_bin_and_can_be_restored_or_purged() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let base = sandbox.base_url().to_owned();
    let app = graph
        .upsert(
            "/applications(uniqueName='bin')",
            json!({"displayName": "bin"}),
        )
        .await
        .body;
    let (id, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    let path = format!("/applications/{id}");

    assert_eq!(graph.delete(&path).await.status, 204);
    assert_eq!(
        graph.get(&path).await.error(),
        (404, "Request_ResourceNotFound", not_found(id).as_str())
    );
    assert_eq!(
        graph.get("/applications(uniqueName='bin')").await.status,
        404
    );
    assert_eq!(graph.get("/applications").await.ids(), Vec::<&str>::new());
    assert_eq!(graph.delete(&path).await.status, 404, "already deleted");

    let bin = graph
        .get("/directory/deletedItems/microsoft.graph.application")
        .await;
    assert_eq!(bin.status, 200);
    assert_eq!(
        bin.body["@odata.context"],
        format!("{base}/v1.0/$metadata#directory/deletedItems/microsoft.graph.application")
    );
    assert_eq!(bin.ids(), [id]);
    assert!(bin.body["value"][0]["deletedDateTime"].is_string());
    let by_app_id = graph
        .filter(
            "/directory/deletedItems/microsoft.graph.application",
            &format!("appId eq '{app_id}'"),
        )
        .await;
    assert_eq!(by_app_id.ids(), [id]);
    let other = graph
        .filter(
            "/directory/deletedItems/microsoft.graph.application",
            "appId eq 'nope'",
        )
        .await;
    assert_eq!(other.ids(), Vec::<&str>::new());
    let item = graph.get(&format!("/directory/deletedItems/{id}")).await;
    assert_eq!(item.status, 200);
    assert_eq!(item.body["@odata.type"], "#microsoft.graph.application");
    assert_eq!(item.body["appId"], app_id);

    let restored = graph
        .post(&format!("/directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(restored.status, 200);
    assert_eq!(restored.body["id"], id);
    assert_eq!(restored.body["deletedDateTime"], Value::Null);
    assert_eq!(restored.body["@odata.type"], "#microsoft.graph.application");
    assert_eq!(graph.get(&path).await.status, 200);
    assert_eq!(
        graph
            .get("/directory/deletedItems/microsoft.graph.application")
            .await
            .ids(),
        Vec::<&str>::new()
    );

    // Deleted again, the name is free for a new app, and the old one can't come back over it.
    assert_eq!(graph.delete(&path).await.status, 204);
    let successor = graph
        .upsert(
            "/applications(uniqueName='bin')",
            json!({"displayName": "bin 2"}),
        )
        .await;
    assert_eq!(successor.status, 201);
    let clash = graph
        .post(&format!("/directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(
        clash.error(),
        (
            400,
            "Request_BadRequest",
            "Another object with the same value for property uniqueName already exists."
        )
    );

    assert_eq!(
        graph
            .delete(&format!("/directory/deletedItems/{id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        graph
            .get(&format!("/directory/deletedItems/{id}"))
            .await
            .error()
            .0,
        404
    );
    assert_eq!(
        graph
            .delete(&format!("/directory/deletedItems/{id}"))
            .await
            .error()
            .0,
        404
    );
    assert_eq!(
        graph
            .post(&format!("/directory/deletedItems/{id}/restore"), json!({}))
            .await
            .error()
            .0,
        404
    );
    // A live object is not in the bin.
    let live = successor.body["id"].as_str().unwrap();
    assert_eq!(
        graph
            .delete(&format!("/directory/deletedItems/{live}"))
            .await
            .status,
        404
    );
    assert_eq!(sandbox.state().objects.len(), 1);
}

#[tokio::test]
async fn soft_deleted_apps_keep_their_identifier_uris_until_purged() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let uri = "api://5a4d0000-0000-4000-8000-0000000000b0/llm-gw";
    let first = graph
        .app(json!({"displayName": "first", "identifierUris": [uri]}))
        .await;
    let id = first["id"].as_str().unwrap();
    let conflict = "Another object with the same value for property identifierUris already exists.";

    let live_clash = graph
        .post(
            "/applications",
            json!({"displayName": "second", "identifierUris": [uri]}),
        )
        .await;
    assert_eq!(live_clash.error(), (400, "Request_BadRequest", conflict));

    assert_eq!(
        graph.delete(&format!("/applications/{id}")).await.status,
        204
    );
    let deleted_clash = graph
        .post(
            "/applications",
            json!({"displayName": "second", "identifierUris": [uri]}),
        )
        .await;
    assert_eq!(deleted_clash.error(), (400, "Request_BadRequest", conflict));
    let third = graph.app(json!({"displayName": "third"})).await;
    let third_path = format!("/applications/{}", third["id"].as_str().unwrap());
    let patch_clash = graph
        .patch(&third_path, json!({"identifierUris": [uri.to_uppercase()]}))
        .await;
    assert_eq!(patch_clash.error(), (400, "Request_BadRequest", conflict));

    assert_eq!(
        graph
            .delete(&format!("/directory/deletedItems/{id}"))
            .await
            .status,
        204
    );
    let second = graph
        .post(
            "/applications",
            json!({"displayName": "second", "identifierUris": [uri]}),
        )
        .await;
    assert_eq!(second.status, 201);
    assert_eq!(second.body["identifierUris"], json!([uri]));
}

#[tokio::test]
async fn a_preauthorization_needs_a_scope_stored_by_an_earlier_write() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let app = graph
        .app(json!({"displayName": "api", "signInAudience": "AzureADMyOrg"}))
        .await;
    let path = format!("/applications/{}", app["id"].as_str().unwrap());
    let preauth = json!([{"appId": CLIENT_APP, "delegatedPermissionIds": [SCOPE_ID]}]);
    let missing = (
        400,
        "Request_BadRequest",
        "delegatedPermissionIds has a Permission Id that cannot be found",
    );

    let together = graph
        .patch(&path, json!({"api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [scope(true)], "preAuthorizedApplications": preauth}}))
        .await;
    assert_eq!(together.error(), missing);
    assert_eq!(
        graph.get(&path).await.body["api"]["oauth2PermissionScopes"],
        json!([]),
        "nothing written"
    );
    let on_create = graph
        .post("/applications", json!({"displayName": "x", "api": {"oauth2PermissionScopes": [scope(true)], "preAuthorizedApplications": preauth}}))
        .await;
    assert_eq!(on_create.error(), missing);

    // A partial `api` replaces the whole object: what it leaves out is reset.
    let scope_only = graph
        .patch(
            &path,
            json!({"api": {"oauth2PermissionScopes": [scope(true)]}}),
        )
        .await;
    assert_eq!(scope_only.status, 204);
    assert_eq!(
        graph.get(&path).await.body["api"],
        json!({"acceptMappedClaims": null, "knownClientApplications": [], "oauth2PermissionScopes": [scope(true)], "preAuthorizedApplications": [], "requestedAccessTokenVersion": null})
    );

    let later = graph
        .patch(&path, json!({"api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [scope(true)], "preAuthorizedApplications": preauth}}))
        .await;
    assert_eq!((later.status, &later.body), (204, &Value::Null));
    let api = graph.get(&path).await.body["api"].clone();
    assert_eq!(api["preAuthorizedApplications"], preauth);
    assert_eq!(api["requestedAccessTokenVersion"], 2);

    // An enabled scope can't just vanish; disabled first, it can.
    let dropped = graph
        .patch(&path, json!({"api": {"requestedAccessTokenVersion": 2}}))
        .await;
    assert_eq!(
        dropped.error(),
        (
            400,
            "CannotDeleteOrUpdateEnabledEntitlement",
            "Permission (scope or role) cannot be deleted or updated unless disabled first."
        )
    );
    let disabled = graph
        .patch(&path, json!({"api": {"requestedAccessTokenVersion": 2, "oauth2PermissionScopes": [scope(false)]}}))
        .await;
    assert_eq!(disabled.status, 204);
    assert_eq!(
        graph
            .patch(&path, json!({"api": {"requestedAccessTokenVersion": 2}}))
            .await
            .status,
        204
    );
    assert_eq!(
        graph.get(&path).await.body["api"]["oauth2PermissionScopes"],
        json!([])
    );
}

#[tokio::test]
async fn service_principals_follow_their_application() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let app = graph
        .app(json!({"displayName": "gw", "signInAudience": "AzureADMyOrg", "identifierUris": ["api://gw"]}))
        .await;
    let app_id = app["appId"].as_str().unwrap();

    let created = graph
        .post("/servicePrincipals", json!({"appId": app_id}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sp = &created.body;
    assert_eq!(
        sp["@odata.context"],
        format!(
            "{}/v1.0/$metadata#servicePrincipals/$entity",
            sandbox.base_url()
        )
    );
    assert!(is_guid(&sp["id"]));
    assert_eq!(sp["appId"], app_id);
    assert_eq!(sp["displayName"], "gw");
    assert_eq!(sp["servicePrincipalType"], "Application");
    assert_eq!(sp["appOwnerOrganizationId"], DEFAULT_TENANT);
    assert_eq!(sp["accountEnabled"], true);
    assert_eq!(sp["appRoleAssignmentRequired"], false);
    assert_eq!(sp["tags"], json!([]));
    assert_eq!(sp["servicePrincipalNames"], json!([app_id, "api://gw"]));
    let sp_id = sp["id"].as_str().unwrap();

    let again = graph
        .post("/servicePrincipals", json!({"appId": app_id}))
        .await;
    assert_eq!(
        again.error(),
        (
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            format!("The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use.").as_str()
        )
    );
    assert_eq!(
        graph.get(&format!("/servicePrincipals/{sp_id}")).await.body,
        *sp
    );
    let by_app_id = format!("/servicePrincipals(appId='{app_id}')");
    assert_eq!(graph.get(&by_app_id).await.body, *sp);
    assert_eq!(
        graph
            .filter("/servicePrincipals", &format!("appId eq '{app_id}'"))
            .await
            .ids(),
        [sp_id]
    );
    assert_eq!(
        graph
            .filter(
                "/servicePrincipals",
                "servicePrincipalNames/any(n:n eq 'api://gw')"
            )
            .await
            .ids(),
        [sp_id]
    );

    // The SP mirrors its app's names.
    let app_path = format!("/applications/{}", app["id"].as_str().unwrap());
    graph
        .patch(
            &app_path,
            json!({"identifierUris": ["api://gw", "api://gw2"], "displayName": "gw2"}),
        )
        .await;
    let mirrored = graph.get(&by_app_id).await.body;
    assert_eq!(
        mirrored["servicePrincipalNames"],
        json!([app_id, "api://gw", "api://gw2"])
    );
    assert_eq!(mirrored["displayName"], "gw2");

    assert_eq!(
        graph
            .upsert(&by_app_id, json!({"tags": ["provision"]}))
            .await
            .status,
        204
    );
    assert_eq!(
        graph.get(&by_app_id).await.body["tags"],
        json!(["provision"])
    );
    assert_eq!(
        graph
            .delete(&format!("/servicePrincipals/{sp_id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        graph
            .get(&format!("/servicePrincipals/{sp_id}"))
            .await
            .error(),
        (404, "Request_ResourceNotFound", not_found(sp_id).as_str())
    );
    // Deleted, not gone: service principals wait in deleted items like applications.
    let deleted = graph.get(&format!("/directory/deletedItems/{sp_id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        deleted.body["@odata.type"],
        "#microsoft.graph.servicePrincipal"
    );
    assert!(deleted.body["deletedDateTime"].is_string());
    assert_eq!(graph.patch(&by_app_id, json!({})).await.error().0, 404);
    let upserted = graph.upsert(&by_app_id, json!({})).await;
    assert_eq!(upserted.status, 201);
    assert_eq!(upserted.body["appId"], app_id);
    assert_eq!(graph.upsert(&by_app_id, json!({})).await.status, 204);

    let nameless = graph.post("/servicePrincipals", json!({})).await;
    assert_eq!(nameless.error().0, 400);
    let unknown = "0c1d0000-0000-4000-8000-0000000000ee";
    let orphan = graph
        .post("/servicePrincipals", json!({"appId": unknown}))
        .await;
    assert_eq!(orphan.error().1, "Request_BadRequest");
    assert_eq!(
        orphan.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );
    // An SP can't be made for a deleted app either.
    assert_eq!(graph.delete(&app_path).await.status, 204);
    let gone = graph
        .upsert(&by_app_id.replace(app_id, unknown), json!({}))
        .await;
    assert_eq!(
        gone.body["error"]["details"][0]["code"],
        "NoBackingApplicationObject"
    );
}

#[tokio::test]
async fn new_objects_are_invisible_to_alternate_keys_during_replication() {
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(60_000),
        ..SandboxConfig::default()
    })
    .await;
    let graph = Graph::new(&sandbox);
    let created = graph
        .upsert(
            "/applications(uniqueName='lagging')",
            json!({"displayName": "lagging"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let (id, app_id) = (
        created.body["id"].as_str().unwrap(),
        created.body["appId"].as_str().unwrap(),
    );

    assert_eq!(graph.get(&format!("/applications/{id}")).await.status, 200);
    assert_eq!(
        graph
            .get(&format!("/applications(appId='{app_id}')"))
            .await
            .error(),
        (404, "Request_ResourceNotFound", not_found(app_id).as_str())
    );
    assert_eq!(
        graph
            .get("/applications(uniqueName='lagging')")
            .await
            .error()
            .0,
        404
    );
    assert_eq!(
        graph
            .filter("/applications", &format!("appId eq '{app_id}'"))
            .await
            .ids(),
        Vec::<&str>::new()
    );
    assert_eq!(graph.get("/applications").await.ids(), Vec::<&str>::new());

    let sp = graph
        .post("/servicePrincipals", json!({"appId": app_id}))
        .await;
    let message = format!(
        "The appId '{app_id}' of the service principal does not reference a valid application object."
    );
    assert_eq!(sp.error(), (400, "Request_BadRequest", message.as_str()));
    assert_eq!(
        sp.body["error"]["details"],
        json!([{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}])
    );

    // Writes reach the primary: a retried upsert updates instead of duplicating.
    let retried = graph
        .upsert(
            "/applications(uniqueName='lagging')",
            json!({"displayName": "lagging"}),
        )
        .await;
    assert_eq!(retried.status, 204);
    assert_eq!(sandbox.state().objects.len(), 1);
}

#[tokio::test]
async fn replicated_objects_appear_once_the_lag_has_passed() {
    // 2 s of simulated lag at 10x: 200 ms on the sandbox's clock, which the test moves.
    let sandbox = start(SandboxConfig {
        replication_lag_ms: Some(2_000),
        time_scale: 10.0,
        ..SandboxConfig::default()
    })
    .await;
    let graph = Graph::new(&sandbox);
    let app = graph.app(json!({"displayName": "soon"})).await;
    let app_id = app["appId"].as_str().unwrap();
    let by_app_id = format!("/applications(appId='{app_id}')");
    assert_eq!(graph.get(&by_app_id).await.status, 404);

    sandbox.advance(SignedDuration::from_millis(300)).unwrap();
    assert_eq!(graph.get(&by_app_id).await.status, 200);
    let sp = graph
        .post("/servicePrincipals", json!({"appId": app_id}))
        .await;
    assert_eq!(sp.status, 201, "{}", sp.body);
    let sp_by_app_id = format!("/servicePrincipals(appId='{app_id}')");
    assert_eq!(
        graph.get(&sp_by_app_id).await.status,
        404,
        "the SP replicates too"
    );
    sandbox.advance(SignedDuration::from_millis(300)).unwrap();
    assert_eq!(graph.get(&sp_by_app_id).await.status, 200);
}

#[tokio::test]
async fn requests_need_a_graph_token_of_the_tenant() {
    let sandbox = default_sandbox().await;
    let owner = Graph::new(&sandbox);
    let app = owner.app(json!({"displayName": "private"})).await;

    let anonymous = Graph::with_token(&sandbox, None).get("/applications").await;
    assert_eq!(
        anonymous.error(),
        (401, "InvalidAuthenticationToken", "Access token is empty.")
    );
    assert!(
        anonymous.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    assert!(anonymous.body["error"]["innerError"]["request-id"].is_string());

    let arm = Graph::with_token(
        &sandbox,
        Some(token(&sandbox, 0, "https://management.azure.com/")),
    );
    assert_eq!(
        arm.get("/applications").await.error(),
        (
            401,
            "InvalidAuthenticationToken",
            "Invalid audience `https://management.azure.com/`."
        )
    );
    let garbage = Graph::with_token(&sandbox, Some("not.a.token".to_owned()));
    assert_eq!(
        garbage.get("/applications").await.error().1,
        "InvalidAuthenticationToken"
    );
    assert_eq!(
        Graph::with_token(&sandbox, None)
            .post("/applications", json!({"displayName": "x"}))
            .await
            .status,
        401
    );

    // Another tenant sees nothing of this one.
    let foreign = Graph::with_token(&sandbox, Some(token(&sandbox, 1, GRAPH)));
    assert_eq!(foreign.get("/applications").await.ids(), Vec::<&str>::new());
    let id = app["id"].as_str().unwrap();
    assert_eq!(
        foreign.get(&format!("/applications/{id}")).await.error().0,
        404
    );
    assert_eq!(
        foreign
            .delete(&format!("/applications/{id}"))
            .await
            .error()
            .0,
        404
    );
    assert_eq!(owner.get(&format!("/applications/{id}")).await.status, 200);
}

#[tokio::test]
async fn errors_have_graphs_shape_and_echo_the_client_request_id() {
    let sandbox = default_sandbox().await;
    let graph = Graph::new(&sandbox);
    let id = "0c1d0000-0000-4000-8000-0000000000dd";
    let echoed = Graph::answer(
        graph
            .request(Method::GET, &format!("/applications/{id}"))
            .header("client-request-id", "5e1f0000-aaaa-4000-8000-000000000001"),
    )
    .await;
    assert_eq!(echoed.status, 404);
    assert!(
        echoed.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let error = echoed.body["error"].as_object().unwrap();
    assert_eq!(
        error.keys().collect::<Vec<_>>(),
        ["code", "innerError", "message"]
    );
    assert_eq!(error["code"], "Request_ResourceNotFound");
    assert_eq!(error["message"], not_found(id));
    let inner = error["innerError"].as_object().unwrap();
    assert_eq!(
        inner.keys().collect::<Vec<_>>(),
        ["client-request-id", "date", "request-id"]
    );
    assert_eq!(
        inner["client-request-id"],
        "5e1f0000-aaaa-4000-8000-000000000001"
    );
    assert_eq!(
        echoed.headers["client-request-id"],
        "5e1f0000-aaaa-4000-8000-000000000001"
    );
    assert_eq!(
        inner["request-id"],
        echoed.headers["request-id"].to_str().unwrap()
    );
    let date = inner["date"].as_str().unwrap();
    assert_eq!(date.len(), 19, "{date}");
    assert_eq!(&date[10..11], "T");

    // Without one, Graph reports the request id in its place.
    let plain = graph.get(&format!("/applications/{id}")).await;
    let inner = &plain.body["error"]["innerError"];
    assert_eq!(inner["client-request-id"], inner["request-id"]);
}

#[tokio::test]
async fn a_scripted_throttle_answers_a_graph_call_with_retry_after() {
    let script = FaultScript::parse(
        "f.yaml",
        "faults:\n  - method: PATCH\n    path: /v1.0/applications*\n    calls: [1]\n    status: 429\n    headers: {Retry-After: \"2\"}\n    body: {error: {code: TooManyRequests, message: Throttled}}\n",
    )
    .unwrap();
    let sandbox = start(SandboxConfig {
        fault_script: Some(script),
        ..SandboxConfig::default()
    })
    .await;
    let graph = Graph::new(&sandbox);
    let path = "/applications(uniqueName='throttled')";
    let body = json!({"displayName": "throttled"});

    let throttled = graph.upsert(path, body.clone()).await;
    assert_eq!(
        (
            throttled.status,
            throttled.headers["retry-after"].to_str().unwrap()
        ),
        (429, "2")
    );
    assert_eq!(throttled.error(), (429, "TooManyRequests", "Throttled"));
    assert!(
        sandbox.state().objects.is_empty(),
        "a throttled call changes nothing"
    );

    let retried = graph.upsert(path, body).await;
    assert_eq!(retried.status, 201);
    let log = sandbox.requests();
    assert_eq!(log[0].fault.as_deref(), Some("script[0] call 1"));
    assert_eq!((log[1].status, log[1].fault.as_deref()), (201, None));
}
