//! What the sandbox knows: tenants with their signing keys and users, the operator identity,
//! directory objects (Graph), device codes, ARM resources. Serialisable, so `--state DIR` can persist it.

pub mod arm;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use arm::ArmState;

/// The default tenant; `environments/local.yaml` names it.
pub const DEFAULT_TENANT: &str = "5a4d0000-0000-4000-8000-0000000000b0";
/// A second tenant, for tokens that must be refused.
pub const FOREIGN_TENANT: &str = "f0f0f0f0-0000-4000-8000-00000000f0f0";
/// The sandbox's subscription; `environments/local.yaml` names it.
pub const DEFAULT_SUBSCRIPTION: &str = "5a4d0000-0000-4000-8000-0000000000b1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub tenants: Vec<Tenant>,
    pub subscriptions: Vec<String>,
    pub operator: Operator,
    pub objects: Vec<DirectoryObject>,
    pub device_codes: Vec<DeviceCode>,
    /// Refresh tokens handed out with `offline_access` (`#[serde(default)]` reads older state
    /// files), by the SHA-256 of the token: the token itself is never stored.
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshGrant>,
    /// Resource groups, resources and async operations (`#[serde(default)]` reads state files
    /// written before ARM was emulated).
    #[serde(default)]
    pub arm: ArmState,
    /// How far the sandbox's clock is ahead of the system clock (moved by `/_sandbox/clock/*`),
    /// kept here so a served sandbox and a later run from the same state agree on the time.
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// Graph `federatedIdentityCredentials` of applications (absent from older state files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Signing keys of the sandbox's CI token issuers (GitHub Actions, Azure DevOps), made on
    /// first use: keys of their own, as a CI's issuer is not Entra.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuer_keys: Vec<IssuerKey>,
    /// GitHub Actions jobs started through `/_sandbox/github-actions/jobs`, by the SHA-256 of
    /// their request token (the token itself is never stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ci_jobs: Vec<CiJob>,
    /// Owners of applications (Graph `owners`), by object ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Ownership>,
    /// App roles granted to service principals (Graph `appRoleAssignments`): how an app gets an
    /// application permission such as Microsoft Graph's `Application.ReadWrite.OwnedBy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_role_assignments: Vec<Map<String, Value>>,
}

/// One owner of one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub tenant_id: String,
    pub application_id: String,
    pub owner_id: String,
}

/// One federated identity credential: its Graph JSON and the application it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FederatedCredential {
    pub tenant_id: String,
    /// The application's object id.
    pub application_id: String,
    pub body: Map<String, Value>,
}

/// The signing key of one CI issuer (`github-actions`, `azure-devops`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerKey {
    pub issuer: String,
    pub key: KeyRecord,
}

/// A GitHub Actions job whose OIDC token may be requested.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CiJob {
    pub id: String,
    pub token_hash: String,
    pub repository: String,
    pub environment: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub event_name: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    pub domain: String,
    /// Signing keys, newest last; all are published, the newest signs.
    pub keys: Vec<KeyRecord>,
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    /// PKCS#8 DER, base64: the sandbox's own throw-away keys.
    pub pkcs8: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
}

/// The identity `provision` itself uses against the sandbox (client credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operator {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub object_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    Application,
    ServicePrincipal,
}

/// A Graph directory object: its JSON as Graph returns it, plus what the sandbox tracks about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectoryObject {
    pub kind: ObjectKind,
    pub tenant_id: String,
    /// Wall-clock milliseconds when created: reads by alternate key lag behind by the replication lag.
    pub created_ms: u64,
    /// Set when soft-deleted (in `/directory/deletedItems`).
    pub deleted_ms: Option<u64>,
    pub body: Map<String, Value>,
}

impl DirectoryObject {
    pub fn id(&self) -> &str {
        self.body
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeviceCodeStatus {
    Pending,
    Approved { user_id: String },
    Declined,
    Redeemed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub issued_ms: u64,
    /// Seconds (sandbox time) between polls; grows by 5 with every `slow_down`.
    pub interval: u64,
    pub expires_in: u64,
    pub last_poll_ms: Option<u64>,
    pub status: DeviceCodeStatus,
}

/// What a refresh token entitles its client to: the grant of the sign-in it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshGrant {
    /// SHA-256 of the token, base64url.
    pub token_hash: String,
    pub tenant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub issued_ms: u64,
}

impl State {
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants
            .iter()
            .find(|t| t.id.eq_ignore_ascii_case(id) || t.domain.eq_ignore_ascii_case(id))
    }

    pub fn tenant_mut(&mut self, id: &str) -> Option<&mut Tenant> {
        self.tenants
            .iter_mut()
            .find(|t| t.id.eq_ignore_ascii_case(id) || t.domain.eq_ignore_ascii_case(id))
    }

    /// Live (not deleted) objects of a kind in a tenant.
    pub fn live<'a>(
        &'a self,
        tenant: &'a str,
        kind: ObjectKind,
    ) -> impl Iterator<Item = &'a DirectoryObject> + 'a {
        self.objects
            .iter()
            .filter(move |o| o.kind == kind && o.deleted_ms.is_none() && o.tenant_id == tenant)
    }

    /// The live application with this client id.
    pub fn application_by_app_id<'a>(
        &'a self,
        tenant: &'a str,
        app_id: &str,
    ) -> Option<&'a DirectoryObject> {
        self.live(tenant, ObjectKind::Application).find(|o| {
            o.str("appId")
                .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
        })
    }

    pub fn service_principal_by_app_id<'a>(
        &'a self,
        tenant: &'a str,
        app_id: &str,
    ) -> Option<&'a DirectoryObject> {
        self.live(tenant, ObjectKind::ServicePrincipal).find(|o| {
            o.str("appId")
                .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
        })
    }
}
