//! The Azure Resource Manager client: resource ids in, JSON out, with the api-version each
//! provider is pinned to, long-running operations followed to the end, and ARM's eventual
//! consistency about new principals absorbed.
//!
//! It knows nothing about which resources `provision` manages; the engine builds ids and bodies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::retry::Replay;
use super::session::{Probe, Session, WireError, json_body};
use super::transport::{Method, WireRequest, WireResponse};
use crate::access::Service;
use crate::cloud::CloudEndpoints;

/// The api-version of every provider we call, in one place. Each is the newest stable version
/// the official REST specs document for the operations we use; the sandbox accepts these and
/// newer ones.
pub mod api_version {
    /// `Microsoft.Resources` (resource groups, subscriptions).
    pub const RESOURCES: &str = "2025-04-01";
    /// `Microsoft.ApiManagement`.
    pub const API_MANAGEMENT: &str = "2024-05-01";
    /// `Microsoft.CognitiveServices` (Foundry accounts, deployments, deleted accounts).
    pub const COGNITIVE_SERVICES: &str = "2025-06-01";
    /// `Microsoft.Authorization` (role assignments).
    pub const AUTHORIZATION: &str = "2022-04-01";
}

/// The api-version for a resource id: that of the last provider namespace in it (a role
/// assignment on an account is `…/Microsoft.CognitiveServices/accounts/a/providers/
/// Microsoft.Authorization/roleAssignments/g`, an Authorization resource); no provider means a
/// subscription or resource group.
pub fn api_version_for(resource_id: &str) -> &'static str {
    let lower = resource_id.to_ascii_lowercase();
    // `/subscriptions/{s}/providers/{namespace}`: a provider's registration, Microsoft.Resources'.
    let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() == 4 && segments[2] == "providers" {
        return api_version::RESOURCES;
    }
    let namespace = lower
        .rsplit_once("/providers/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default());
    match namespace {
        Some("microsoft.apimanagement") => api_version::API_MANAGEMENT,
        Some("microsoft.cognitiveservices") => api_version::COGNITIVE_SERVICES,
        Some("microsoft.authorization") => api_version::AUTHORIZATION,
        _ => api_version::RESOURCES,
    }
}

/// How long a write waits for a new principal to replicate to ARM (`PrincipalNotFound`). Entra
/// documents no bound; Microsoft's SDKs give up after 70 s, which real users report is too short.
pub const PRINCIPAL_REPLICATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What a DELETE found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is gone (or, for a Cognitive Services account, soft-deleted).
    Removed,
    /// There was nothing to delete.
    Absent,
}

/// ARM, for one command.
#[derive(Clone)]
pub struct ArmClient {
    session: Arc<Session>,
    base: String,
    scope: String,
}

impl ArmClient {
    pub fn new(session: Arc<Session>, endpoints: &CloudEndpoints) -> ArmClient {
        ArmClient {
            session,
            base: endpoints.arm.trim_end_matches('/').to_owned(),
            scope: endpoints.arm_scope(),
        }
    }

    /// The URL of `id` (an ARM id, optionally with an action or a query) at its pinned version.
    pub fn url(&self, id: &str) -> String {
        let (path, query) = id.split_once('?').unwrap_or((id, ""));
        let version = api_version_for(path);
        let mut url = format!("{}{path}?api-version={version}", self.base);
        if !query.is_empty() {
            url.push('&');
            url.push_str(query);
        }
        url
    }

    /// GET; `None` when ARM answers 404 (the resource or its group does not exist).
    pub async fn get(&self, id: &str) -> Result<Option<Value>, WireError> {
        let request = WireRequest::new(Method::Get, self.url(id));
        let response = self
            .session
            .send(&self.scope, &request, Replay::ByMethod, &describe(id))
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        self.json(&request, response).map(Some)
    }

    /// GET with the resource's version: the `ETag` header, else the body's top-level `etag`
    /// (Cognitive Services and API Management services carry it in both; APIM entities only in
    /// the header, apim.md §3.10; resource groups and role assignments in neither). `None` when
    /// ARM answers 404.
    pub async fn get_versioned(
        &self,
        id: &str,
    ) -> Result<Option<(Value, Option<String>)>, WireError> {
        let request = WireRequest::new(Method::Get, self.url(id));
        let response = self
            .session
            .send(&self.scope, &request, Replay::ByMethod, &describe(id))
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        let header = response.headers.get("etag").map(str::to_owned);
        let body = self.json(&request, response)?;
        let etag = header.or_else(|| body.get("etag").and_then(Value::as_str).map(str::to_owned));
        Ok(Some((body, etag)))
    }

    /// Every item of a collection, following `nextLink`.
    pub async fn list(&self, id: &str) -> Result<Vec<Value>, WireError> {
        let mut items = Vec::new();
        let mut url = self.url(id);
        loop {
            let request = WireRequest::new(Method::Get, &url);
            let response = self
                .session
                .expect_success(
                    Service::Arm,
                    &self.scope,
                    &request,
                    Replay::ByMethod,
                    &describe(id),
                )
                .await?;
            let page = self.json(&request, response)?;
            if let Some(values) = page.get("value").and_then(Value::as_array) {
                items.extend(values.iter().cloned());
            }
            match page.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    super::session::check_origin(&url, next)?;
                    url = next.to_owned();
                }
                _ => return Ok(items),
            }
        }
    }

    /// PUT, followed to the end of its operation; the resource as it ended. A `PrincipalNotFound`
    /// (a principal created moments ago that ARM does not see yet) is retried until the principal
    /// replicates, for up to [`PRINCIPAL_REPLICATION_TIMEOUT`].
    pub async fn put(&self, id: &str, body: &Value) -> Result<Value, WireError> {
        self.write(Method::Put, id, body, None).await
    }

    /// PUT only if the entity still has `etag` (APIM's optimistic concurrency); a mismatch is an
    /// error with status 412.
    pub async fn put_if_match(
        &self,
        id: &str,
        body: &Value,
        etag: &str,
    ) -> Result<Value, WireError> {
        self.write(Method::Put, id, body, Some(etag)).await
    }

    /// PATCH, followed to the end. Not repeated after an ambiguous failure.
    pub async fn patch(&self, id: &str, body: &Value) -> Result<Value, WireError> {
        self.write(Method::Patch, id, body, None).await
    }

    /// DELETE, followed to the end. A 404 or 204 means there was nothing to delete.
    pub async fn delete(&self, id: &str) -> Result<Deleted, WireError> {
        self.delete_with(id, None).await
    }

    /// DELETE of an APIM entity, which refuses one without `If-Match`: `*` deletes whatever
    /// version is there (apim.md §3).
    pub async fn delete_any_version(&self, id: &str) -> Result<Deleted, WireError> {
        self.delete_with(id, Some("*")).await
    }

    async fn delete_with(&self, id: &str, if_match: Option<&str>) -> Result<Deleted, WireError> {
        let mut request = WireRequest::new(Method::Delete, self.url(id));
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        let what = format!("{} to be deleted", describe(id));
        let initial = self
            .session
            .send(&self.scope, &request, Replay::ByMethod, &what)
            .await?;
        if matches!(initial.status, 204 | 404) {
            return Ok(Deleted::Absent);
        }
        if !initial.is_success() {
            return Err(WireError::refused(Service::Arm, &request, &initial));
        }
        // Re-send through the LRO driver only to follow it: feed it the answer we already have.
        self.session
            .follow(&self.scope, &request, initial, &what)
            .await?;
        Ok(Deleted::Removed)
    }

    /// POST an action (`…/listKeys`). `replay` says whether the API defines it as safe to repeat.
    pub async fn post(
        &self,
        id: &str,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Value, WireError> {
        let mut request = WireRequest::new(Method::Post, self.url(id));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self
            .session
            .operation(&self.scope, &request, replay, &describe(id))
            .await?;
        self.json(&request, response)
    }

    async fn write(
        &self,
        method: Method,
        id: &str,
        body: &Value,
        etag: Option<&str>,
    ) -> Result<Value, WireError> {
        let mut request = WireRequest::new(method, self.url(id)).json(body);
        if let Some(etag) = etag {
            request = request.header("if-match", etag);
        }
        let what = describe(id);
        let session = &self.session;
        let scope = &self.scope;
        let response = session
            .until(
                &format!("the principal in {what} to replicate to Azure Resource Manager"),
                PRINCIPAL_REPLICATION_TIMEOUT,
                || async {
                    match session
                        .operation(scope, &request, Replay::ByMethod, &what)
                        .await
                    {
                        Err(e) if e.has_code("PrincipalNotFound") => {
                            Ok(Probe::NotYet("HTTP 400 PrincipalNotFound".to_owned()))
                        }
                        other => other.map(Probe::Ready),
                    }
                },
            )
            .await?;
        self.json(&request, response)
    }

    /// The body of a successful answer (`null` when empty), or the error it is.
    fn json(&self, request: &WireRequest, response: WireResponse) -> Result<Value, WireError> {
        if !response.is_success() {
            return Err(WireError::refused(Service::Arm, request, &response));
        }
        json_body(request, &response)
    }
}

/// "Foundry account ai-prod" from a resource id: the last type and name, for progress and
/// deadline messages.
fn describe(id: &str) -> String {
    let path = id.split('?').next().unwrap_or(id);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let [.., kind, name] = segments.as_slice() else {
        return path.to_owned();
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "subscriptions" => "subscription",
        "resourcegroups" => "resource group",
        "accounts" => "Foundry account",
        "deletedaccounts" => "deleted Foundry account",
        "deployments" => "model deployment",
        "service" => "API Management service",
        "apis" => "API",
        "operations" => "API operation",
        "policies" => "policy",
        "backends" => "backend",
        "namedvalues" => "named value",
        "roleassignments" => "role assignment",
        _ => kind,
    };
    format!("{kind} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_has_its_pinned_version() {
        let sub = "/subscriptions/00000000-0000-0000-0000-000000000001";
        let rg = format!("{sub}/resourceGroups/rg");
        let account = format!("{rg}/providers/Microsoft.CognitiveServices/accounts/a");
        assert_eq!(api_version_for(sub), "2025-04-01");
        assert_eq!(api_version_for(&rg), "2025-04-01");
        assert_eq!(api_version_for(&account), "2025-06-01");
        assert_eq!(
            api_version_for(&format!("{account}/deployments/gpt-4o-mini")),
            "2025-06-01"
        );
        assert_eq!(
            api_version_for(&format!(
                "{account}/providers/Microsoft.Authorization/roleAssignments/g"
            )),
            "2022-04-01"
        );
        assert_eq!(
            api_version_for(&format!(
                "{rg}/providers/microsoft.apimanagement/service/gw/apis/llm"
            )),
            "2024-05-01"
        );
    }

    #[test]
    fn describe_names_the_last_type_and_name() {
        assert_eq!(
            describe(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/ai?x=1"
            ),
            "Foundry account ai"
        );
        assert_eq!(
            describe(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/gw"
            ),
            "API Management service gw"
        );
    }
}
