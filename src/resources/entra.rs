//! The Entra ID app registrations: the API app (the token audience, with one delegated scope),
//! the public client apps (device code flow), their service principals, and the API's
//! pre-authorization of the clients.
//!
//! Apps are found and written by `uniqueName` (an alternate key), so a re-run or a retried
//! request never makes a second one. The pre-authorization is its own resource because Graph
//! refuses a pre-authorization in the same request as the scope it names, and because it needs
//! the clients' app ids, which need the API's.

use serde_json::{Value, json};

use super::{
    Address, FieldChange, Finding, Kind, Managed, Outputs, Read, WriteRequest, has_unknown,
    stable_guid,
};
use crate::access::{Service, odata_key};
use crate::config::{Blueprint, ClientApp as ClientSpec};

/// Outputs of apps and service principals.
pub const APP_ID: &str = "appId";
pub const OBJECT_ID: &str = "id";

fn graph_read(path: String) -> Option<Read> {
    Some(Read {
        service: Service::Graph,
        path,
    })
}

fn by_unique_name(unique_name: &str) -> String {
    format!("/applications(uniqueName='{}')", odata_key(unique_name))
}

fn app_outputs(address: &Address, observed: &Value) -> Outputs {
    let mut outputs = Outputs::default();
    for name in [APP_ID, OBJECT_ID] {
        if let Some(value) = observed.get(name).and_then(Value::as_str) {
            outputs.set(address, name, value);
        }
    }
    outputs
}

/// Where an app is read: by its pinned `appId` when the environment names one (an app that
/// exists already, perhaps made outside provision), else by `uniqueName`.
pub fn app_path(unique_name: &str, pinned: Option<&str>) -> String {
    match pinned {
        Some(app_id) => format!("/applications(appId='{}')", odata_key(app_id)),
        None => by_unique_name(unique_name),
    }
}

/// A pinned app id that names no app: provision creates apps only when none is pinned.
fn pinned_absent(key: &str, unique_name: &str, pinned: Option<&str>) -> Option<(String, String)> {
    let app_id = pinned?;
    Some((
        format!(
            "app {unique_name} is pinned to app id {app_id} ({key}), and no such app exists in the tenant"
        ),
        format!("check the id, or remove `{key}` to let provision create the app"),
    ))
}

/// `provision` and `provision-env:<env>`: how teardown finds this environment's apps.
fn app_tags(blueprint: &Blueprint) -> Value {
    let mut tags = vec![
        "provision".to_owned(),
        format!("provision-env:{}", blueprint.env),
    ];
    if let Some(expires) = &blueprint.expires {
        tags.push(format!("{}:{expires}", super::ownership::EXPIRES_TAG));
    }
    json!(tags)
}

/// The top-level fields of `desired` that differ, as one PATCH body (Graph replaces each
/// property it is given, so unchanged ones are left out).
fn patch_of(changes: &[FieldChange], desired: &Value) -> Value {
    let mut body = serde_json::Map::new();
    for change in changes {
        let top = change.path.split(['.', '[']).next().unwrap_or(&change.path);
        if let Some(value) = desired.get(top) {
            body.insert(top.to_owned(), value.clone());
        }
    }
    Value::Object(body)
}

/// The API app's scope id: stable per app and scope value, so re-runs and clients agree on it.
pub fn scope_id(blueprint: &Blueprint) -> String {
    stable_guid(&[
        "oauth2PermissionScope",
        &blueprint.entra.api.unique_name,
        &blueprint.entra.api.scope,
    ])
}

/// The API app registration.
pub struct ApiApp {
    unique_name: String,
    /// `entra.api.app_id`: an app that exists already; read by it, never created.
    pinned: Option<String>,
    display_name: String,
    scope: String,
    scope_id: String,
    tags: Value,
}

impl ApiApp {
    pub fn new(blueprint: &Blueprint) -> ApiApp {
        let api = &blueprint.entra.api;
        ApiApp {
            unique_name: api.unique_name.clone(),
            pinned: api.app_id.as_ref().map(|id| id.as_str().to_owned()),
            display_name: api.display_name.clone(),
            scope: api.scope.clone(),
            scope_id: scope_id(blueprint),
            tags: app_tags(blueprint),
        }
    }

    pub fn address_of(blueprint: &Blueprint) -> Address {
        Address::new(Kind::ApiApp, blueprint.entra.api.unique_name.clone())
    }

    /// Values of the enabled scopes that are not the environment's.
    fn replaced_scopes(&self, observed: &Value) -> Vec<String> {
        let scopes = observed
            .pointer("/api/oauth2PermissionScopes")
            .and_then(Value::as_array);
        scopes
            .into_iter()
            .flatten()
            .filter(|s| self.is_other_enabled(s))
            .map(|s| {
                s.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    fn is_other_enabled(&self, scope: &Value) -> bool {
        scope.get("isEnabled").and_then(Value::as_bool) == Some(true)
            && scope.get("id").and_then(Value::as_str) != Some(self.scope_id.as_str())
    }

    /// The observed `api` with every other enabled scope disabled, byte for byte otherwise, when
    /// there is one to disable (Entra rejects a disable that drops other scopes too).
    fn with_old_scopes_disabled(&self, observed: &Value) -> Option<Value> {
        if self.replaced_scopes(observed).is_empty() {
            return None;
        }
        let mut api = observed.get("api")?.clone();
        for scope in api.get_mut("oauth2PermissionScopes")?.as_array_mut()? {
            if self.is_other_enabled(scope) {
                scope["isEnabled"] = json!(false);
            }
        }
        Some(api)
    }

    /// Pre-authorizations with only the ids of the environment's scope left, and entries left
    /// with none dropped.
    fn pre_authorizations_kept(&self, pre: &[Value]) -> Vec<Value> {
        pre.iter()
            .filter_map(|p| {
                let ids: Vec<&Value> = p
                    .get("delegatedPermissionIds")?
                    .as_array()?
                    .iter()
                    .filter(|id| {
                        id.as_str()
                            .is_some_and(|id| id.eq_ignore_ascii_case(&self.scope_id))
                    })
                    .collect();
                if ids.is_empty() {
                    return None;
                }
                let mut kept = p.clone();
                kept["delegatedPermissionIds"] = json!(ids);
                Some(kept)
            })
            .collect()
    }

    fn scope_object(&self) -> Value {
        let text = format!("Call the {} through the gateway", self.display_name);
        json!({
            "id": self.scope_id,
            "value": self.scope,
            "type": "User",
            "isEnabled": true,
            "adminConsentDisplayName": format!("Invoke {}", self.display_name),
            "adminConsentDescription": text,
            "userConsentDisplayName": format!("Invoke {}", self.display_name),
            "userConsentDescription": text,
        })
    }
}

impl Managed for ApiApp {
    fn address(&self) -> Address {
        Address::new(Kind::ApiApp, self.unique_name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        Vec::new()
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        graph_read(app_path(&self.unique_name, self.pinned.as_deref()))
    }

    fn absent_error(&self) -> Option<(String, String)> {
        pinned_absent(
            "entra.api.app_id",
            &self.unique_name,
            self.pinned.as_deref(),
        )
    }

    /// An app someone else made (pinned by `app_id`) may expose scopes for other callers:
    /// provision never disables those, and stops instead.
    fn conflict(&self, observed: &Value) -> Option<(String, String)> {
        self.pinned.as_ref()?;
        let value = self.replaced_scopes(observed).into_iter().next()?;
        Some((
            format!(
                "API app {} has the enabled scope `{value}`, which is not `{}` (entra.api.scope); \
                 Entra refuses to remove an enabled scope, and provision does not disable scopes \
                 of an app it did not make",
                self.unique_name, self.scope
            ),
            format!(
                "keep `scope: {value}`, or disable that scope first (set isEnabled to false on \
                 the app registration's exposed API) and run again"
            ),
        ))
    }

    /// A renamed scope replaces the enabled one (its id follows its value): tokens for the old
    /// scope stop being issued, so the plan shows it as destructive and `up` asks first.
    fn replace_reason(&self, observed: &Value, _desired: &Value) -> Option<String> {
        let old = self.replaced_scopes(observed);
        (!old.is_empty()).then(|| {
            format!(
                "scope `{}` is replaced by `{}`: Entra needs it disabled first, then the new \
                 scope and the pre-authorizations are written; tokens for `{}` stop being issued \
                 and clients that ask for it fail",
                old.join("`, `"),
                self.scope,
                old.join("`, `")
            )
        })
    }

    fn desired(&self, known: &Outputs) -> Value {
        let app_id = known.or_unknown(&self.address(), APP_ID);
        json!({
            "displayName": self.display_name,
            "signInAudience": "AzureADMyOrg",
            "identifierUris": [format!("api://{app_id}")],
            "api": {
                "requestedAccessTokenVersion": 2,
                "oauth2PermissionScopes": [self.scope_object()],
            },
            "tags": self.tags,
        })
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        let Some(observed) = observed else {
            if self.pinned.is_some() {
                return None;
            }
            // Created without the identifier URI, which needs the app id it is about to get.
            let mut body = self.desired(known);
            body.as_object_mut()?.remove("identifierUris");
            return Some(WriteRequest::graph_upsert(
                by_unique_name(&self.unique_name),
                body,
            ));
        };
        let mut known = known.clone();
        known.merge(self.outputs(observed));
        let mut desired = self.desired(&known);
        super::keep_first_expiry(&mut desired, observed);
        let changes = self.compare(observed, &desired);
        if changes.is_empty() {
            return None;
        }
        let id = observed.get(OBJECT_ID)?.as_str()?;
        // Entra refuses to remove an enabled scope (`CannotDeleteOrUpdateEnabledEntitlement`):
        // the first step disables it and changes nothing else (docs/reference/dataplane.md §5).
        if let Some(api) = self.with_old_scopes_disabled(observed) {
            return Some(WriteRequest::graph_patch(
                format!("/applications/{id}"),
                json!({ "api": api }),
            ));
        }
        let mut body = patch_of(&changes, &desired);
        // Graph replaces `api` whole: keep the pre-authorizations another resource manages, but
        // not of a scope this write removes (Graph refuses an id it can not find); the
        // pre-authorization resource names the new scope after this.
        if let (Some(api), Some(pre)) = (
            body.get_mut("api"),
            observed
                .pointer("/api/preAuthorizedApplications")
                .and_then(Value::as_array),
        ) {
            api["preAuthorizedApplications"] = json!(self.pre_authorizations_kept(pre));
        }
        Some(WriteRequest::graph_patch(
            format!("/applications/{id}"),
            body,
        ))
    }

    fn outputs(&self, observed: &Value) -> Outputs {
        app_outputs(&self.address(), observed)
    }

    fn findings(&self, observed: &Value, _known: &Outputs) -> Vec<Finding> {
        let version = observed.pointer("/api/requestedAccessTokenVersion");
        if version.and_then(Value::as_i64) != Some(2) {
            vec![Finding {
                rule: "v1-access-tokens",
                message: "issues v1 access tokens (api.requestedAccessTokenVersion is not 2): \
                          their audience is the identifier URI and their issuer sts.windows.net, \
                          which the v2 policy does not accept"
                    .to_owned(),
            }]
        } else {
            Vec::new()
        }
    }
}

/// A service principal, the tenant's instance of an app: without it, no token can be issued for
/// the API, and no user can sign in to a client.
pub struct ServicePrincipal {
    kind: Kind,
    app: Address,
}

impl ServicePrincipal {
    pub fn of_api(blueprint: &Blueprint) -> ServicePrincipal {
        ServicePrincipal {
            kind: Kind::ApiServicePrincipal,
            app: ApiApp::address_of(blueprint),
        }
    }

    pub fn of_client(client: &ClientSpec) -> ServicePrincipal {
        ServicePrincipal {
            kind: Kind::ClientServicePrincipal,
            app: ClientApp::address_of(client),
        }
    }

    fn path(&self, known: &Outputs) -> Option<String> {
        let app_id = known.get(&self.app, APP_ID)?;
        Some(format!("/servicePrincipals(appId='{}')", odata_key(app_id)))
    }
}

impl Managed for ServicePrincipal {
    fn address(&self) -> Address {
        Address::new(self.kind, self.app.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.app.clone()]
    }

    fn read(&self, known: &Outputs) -> Option<Read> {
        graph_read(self.path(known)?)
    }

    fn desired(&self, known: &Outputs) -> Value {
        json!({"appId": known.or_unknown(&self.app, APP_ID)})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        if observed.is_some() {
            return None;
        }
        let path = self.path(known)?;
        Some(WriteRequest::graph_upsert(path, json!({})))
    }

    fn outputs(&self, observed: &Value) -> Outputs {
        let mut outputs = Outputs::default();
        if let Some(id) = observed.get(OBJECT_ID).and_then(Value::as_str) {
            outputs.set(&self.address(), OBJECT_ID, id);
        }
        outputs
    }
}

/// A public client app (scripts, notebooks): device code flow, no secret.
pub struct ClientApp {
    spec: ClientSpec,
    api: Address,
    scope_id: String,
    tags: Value,
}

impl ClientApp {
    pub fn all(blueprint: &Blueprint) -> Vec<ClientApp> {
        blueprint
            .entra
            .clients
            .iter()
            .map(|spec| ClientApp {
                spec: spec.clone(),
                api: ApiApp::address_of(blueprint),
                scope_id: scope_id(blueprint),
                tags: app_tags(blueprint),
            })
            .collect()
    }

    pub fn address_of(client: &ClientSpec) -> Address {
        Address::new(Kind::ClientApp, client.unique_name.clone())
    }
}

impl Managed for ClientApp {
    fn address(&self) -> Address {
        ClientApp::address_of(&self.spec)
    }

    fn depends_on(&self) -> Vec<Address> {
        vec![self.api.clone()]
    }

    fn read(&self, _known: &Outputs) -> Option<Read> {
        graph_read(app_path(
            &self.spec.unique_name,
            self.spec.app_id.as_ref().map(|id| id.as_str()),
        ))
    }

    fn absent_error(&self) -> Option<(String, String)> {
        pinned_absent(
            "entra.clients[].app_id",
            &self.spec.unique_name,
            self.spec.app_id.as_ref().map(|id| id.as_str()),
        )
    }

    fn desired(&self, known: &Outputs) -> Value {
        json!({
            "displayName": self.spec.display_name,
            "signInAudience": "AzureADMyOrg",
            "isFallbackPublicClient": true,
            "publicClient": {"redirectUris": self.spec.redirect_uris},
            "requiredResourceAccess": [{
                "resourceAppId": known.or_unknown(&self.api, APP_ID),
                "resourceAccess": [{"id": self.scope_id, "type": "Scope"}],
            }],
            "tags": self.tags,
        })
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        let mut desired = self.desired(known);
        let Some(observed) = observed else {
            if self.spec.app_id.is_some() {
                return None;
            }
            return Some(WriteRequest::graph_upsert(
                by_unique_name(&self.spec.unique_name),
                desired,
            ));
        };
        super::keep_first_expiry(&mut desired, observed);
        let changes = self.compare(observed, &desired);
        if changes.is_empty() {
            return None;
        }
        let id = observed.get(OBJECT_ID)?.as_str()?;
        Some(WriteRequest::graph_patch(
            format!("/applications/{id}"),
            patch_of(&changes, &desired),
        ))
    }

    fn outputs(&self, observed: &Value) -> Outputs {
        app_outputs(&self.address(), observed)
    }

    fn findings(&self, observed: &Value, _known: &Outputs) -> Vec<Finding> {
        if observed
            .get("isFallbackPublicClient")
            .and_then(Value::as_bool)
            != Some(true)
        {
            vec![Finding {
                rule: "client-not-public",
                message: "does not allow public client flows (isFallbackPublicClient is not \
                          true): the device code flow fails for it"
                    .to_owned(),
            }]
        } else {
            Vec::new()
        }
    }
}

/// The API app's `preAuthorizedApplications`: each client may get tokens for the scope without
/// a consent prompt.
pub struct PreAuthorization {
    api: Address,
    clients: Vec<Address>,
    scope_id: String,
}

impl PreAuthorization {
    pub fn new(blueprint: &Blueprint) -> PreAuthorization {
        PreAuthorization {
            api: ApiApp::address_of(blueprint),
            clients: blueprint
                .entra
                .clients
                .iter()
                .map(ClientApp::address_of)
                .collect(),
            scope_id: scope_id(blueprint),
        }
    }
}

impl Managed for PreAuthorization {
    fn address(&self) -> Address {
        Address::new(Kind::ApiPreAuthorization, self.api.name.clone())
    }

    fn depends_on(&self) -> Vec<Address> {
        let mut deps = vec![self.api.clone()];
        deps.extend(self.clients.iter().cloned());
        deps
    }

    /// By object id, which Graph answers from the primary: right after the API app was created,
    /// a read by `uniqueName` may still miss it.
    fn read(&self, known: &Outputs) -> Option<Read> {
        let id = known.get(&self.api, OBJECT_ID)?;
        graph_read(format!("/applications/{}", odata_key(id)))
    }

    fn desired(&self, known: &Outputs) -> Value {
        let pre: Vec<Value> = self
            .clients
            .iter()
            .map(|c| {
                json!({
                    "appId": known.or_unknown(c, APP_ID),
                    "delegatedPermissionIds": [self.scope_id],
                })
            })
            .collect();
        json!({"api": {"preAuthorizedApplications": pre}})
    }

    fn next_write(&self, observed: Option<&Value>, known: &Outputs) -> Option<WriteRequest> {
        let desired = self.desired(known);
        let observed = observed?;
        if self.compare(observed, &desired).is_empty() {
            return None;
        }
        if has_unknown(&desired) {
            return None;
        }
        // The whole `api` object, as observed, with the new list (a partial `api` loses fields).
        let mut api = observed.get("api").cloned().unwrap_or_else(|| json!({}));
        api["preAuthorizedApplications"] = desired["api"]["preAuthorizedApplications"].clone();
        let id = observed.get(OBJECT_ID)?.as_str()?;
        Some(WriteRequest::graph_patch(
            format!("/applications/{id}"),
            json!({"api": api}),
        ))
    }

    fn outputs(&self, _observed: &Value) -> Outputs {
        Outputs::default()
    }
}
