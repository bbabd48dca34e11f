//! Errors that ARM and Microsoft Graph return, typed, and printed in full.
//!
//! Other tools print `ValidationError: One or more fields contain incorrect values:` and drop the
//! `details` that name the field. Here the display carries the code, the message, every detail
//! (with its target), the additional-info types, the HTTP status and the request ids that Azure
//! support asks for. [`Remedy::hint`] names the remedy where it is known; the output layer prints it
//! on its own `hint:` line.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};

use super::transport::{CLIENT_REQUEST_ID, WireResponse};
use crate::hint::Remedy;

/// ARM's `ErrorDetail` (common-types), which Graph's error shares apart from `innerError`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub target: Option<String>,
    #[serde(deserialize_with = "null_as_empty")]
    pub details: Vec<ErrorBody>,
    #[serde(deserialize_with = "null_as_empty")]
    pub additional_info: Vec<AdditionalInfo>,
    #[serde(alias = "innererror")]
    pub inner_error: Option<InnerError>,
}

/// `additionalInfo[]`: a typed blob (for example `PolicyViolation` with the policy that denied).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AdditionalInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub info: serde_json::Value,
}

/// Graph's `innerError`: where Graph puts its request id.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct InnerError {
    #[serde(rename = "request-id")]
    pub request_id: Option<String>,
    #[serde(rename = "client-request-id")]
    pub client_request_id: Option<String>,
    pub date: Option<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

impl ErrorBody {
    /// Parses `{"error": {...}}`; `None` when the body is not that shape.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        serde_json::from_slice::<Envelope>(body)
            .ok()
            .map(|e| e.error)
    }

    /// This error and every nested detail, depth first.
    fn all(&self) -> Vec<&ErrorBody> {
        let mut found = vec![self];
        for d in &self.details {
            found.extend(d.all());
        }
        found
    }
}

/// Which API answered: the core's own name for the two APIs.
use crate::access::Service;

/// An error from ARM or Graph, with what is needed to act on it or report it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ApiError {
    pub service: Service,
    /// The HTTP status, or `None` for a long-running operation that ended `Failed` (its status
    /// resource answered 200; the error is in the body).
    pub status: Option<u16>,
    pub body: ErrorBody,
    /// `x-ms-request-id` (ARM) or `request-id` (Graph, also read from `innerError`).
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub client_request_id: Option<String>,
}

/// How much of a body that is not an error envelope to show.
const RAW_BODY_SHOWN: usize = 300;

impl ApiError {
    /// The error a non-success response carries. A body that is not `{"error": ...}` becomes the
    /// message (shortened), so nothing the server said is lost.
    pub fn from_response(service: Service, response: &WireResponse) -> ApiError {
        let body = ErrorBody::parse(&response.body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&response.body);
            let text = text.trim();
            let message = if text.is_empty() {
                "(no response body)".to_owned()
            } else if text.chars().count() > RAW_BODY_SHOWN {
                format!("{}…", text.chars().take(RAW_BODY_SHOWN).collect::<String>())
            } else {
                text.to_owned()
            };
            ErrorBody {
                message,
                ..ErrorBody::default()
            }
        });
        let inner = body.inner_error.clone().unwrap_or_default();
        ApiError {
            service,
            status: Some(response.status),
            request_id: response
                .request_id()
                .map(str::to_owned)
                .or(inner.request_id),
            correlation_id: response.correlation_id().map(str::to_owned),
            client_request_id: response
                .headers
                .get(CLIENT_REQUEST_ID)
                .or_else(|| response.headers.get("client-request-id"))
                .map(str::to_owned)
                .or(inner.client_request_id),
            body,
        }
    }

    /// The error of a long-running operation that ended `Failed` or `Canceled`.
    pub fn from_operation(service: Service, body: ErrorBody, response: &WireResponse) -> ApiError {
        ApiError {
            body,
            status: None,
            ..ApiError::from_response(service, response)
        }
    }

    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// True if the error or any of its details has `code` (case-insensitively: ARM is not
    /// consistent about casing).
    pub fn has_code(&self, code: &str) -> bool {
        self.body
            .all()
            .iter()
            .any(|e| e.code.eq_ignore_ascii_case(code))
    }

    /// The remedy, where we know it: the text of [`Remedy::hint`], by error code.
    fn remedy(&self) -> Option<String> {
        let errors = self.body.all();
        let find = |codes: &[&str]| {
            errors
                .iter()
                .copied()
                .find(|e| codes.iter().any(|c| e.code.eq_ignore_ascii_case(c)))
        };
        if find(&["FlagMustBeSetForRestore", "CustomDomainInUse"]).is_some() {
            return Some(
                "a soft-deleted Cognitive Services account still holds this name (Azure keeps \
                 deleted accounts for 48 hours); purge it (`az cognitiveservices account purge \
                 --name <account> --resource-group <group> --location <location>`), or restore \
                 it (`az cognitiveservices account recover` with the same arguments)"
                    .to_owned(),
            );
        }
        if find(&["PrincipalNotFound"]).is_some() {
            return Some(
                "a new principal takes a while to replicate from Entra ID to ARM; provision \
                 retries this automatically until the principal is visible or --timeout expires"
                    .to_owned(),
            );
        }
        if find(&["RoleAssignmentExists"]).is_some() {
            return Some(
                "the role is already assigned to this principal on this scope under another \
                 assignment name (made outside provision); the access is in place, and deleting \
                 that assignment lets provision manage it"
                    .to_owned(),
            );
        }
        if let Some(e) = errors.iter().find(|e| {
            e.code.eq_ignore_ascii_case("InsufficientQuota")
                || e.message.to_ascii_lowercase().contains("quota")
        }) {
            return Some(quota_hint(&e.message));
        }
        if let Some(e) = find(&["AuthorizationFailed"]) {
            return Some(authorization_hint(&e.message));
        }
        if find(&["ResourceGroupNotFound"]).is_some() {
            return Some(
                "the resource group does not exist in this subscription; check the subscription \
                 and resource group of the environment (`provision validate --env <name>` shows \
                 them)"
                    .to_owned(),
            );
        }
        if find(&[
            "MissingApiVersionParameter",
            "InvalidApiVersionParameter",
            "NoRegisteredProviderFound",
        ])
        .is_some()
        {
            return Some(
                "provision pins one api-version per resource provider, and this cloud or region \
                 does not accept it; this is a bug in provision: report it with the request id \
                 above"
                    .to_owned(),
            );
        }
        if let Some(e) = find(&["MissingSubscriptionRegistration"]) {
            let namespace = quoted_after(&e.message, "namespace '").unwrap_or("<namespace>");
            return Some(format!(
                "register the resource provider once per subscription: `az provider register \
                 --namespace {namespace}`"
            ));
        }
        if find(&["ValidationError"]).is_some() {
            return Some(if self.body.details.is_empty() {
                "Azure rejected a field without saying which; compare the request with \
                 `provision plan` output"
                    .to_owned()
            } else {
                "each line above names a rejected field (target) and why; fix it in the \
                 environment file, or in the policy template for policy XML errors (`provision \
                 render` shows the XML sent)"
                    .to_owned()
            });
        }
        None
    }

    fn render(&self) -> String {
        let mut out = format!("{} error", self.service);
        if !self.body.code.is_empty() {
            let _ = write!(out, " {}", self.body.code);
        }
        if let Some(status) = self.status {
            let _ = write!(out, " (HTTP {status})");
        }
        let _ = write!(out, ": {}", self.body.message);
        if let Some(target) = &self.body.target {
            let _ = write!(out, " [target: {target}]");
        }
        render_details(&mut out, &self.body.details, 1);
        let kinds: Vec<&str> = self
            .body
            .all()
            .iter()
            .flat_map(|e| e.additional_info.iter().map(|i| i.kind.as_str()))
            .filter(|k| !k.is_empty())
            .collect();
        if !kinds.is_empty() {
            let _ = write!(out, "\n  additional info: {}", kinds.join(", "));
        }
        let ids: Vec<String> = [
            ("request id", &self.request_id),
            ("correlation id", &self.correlation_id),
            ("client request id", &self.client_request_id),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name} {v}")))
        .collect();
        if !ids.is_empty() {
            let _ = write!(out, "\n  {}", ids.join(", "));
        }
        out
    }
}

impl Remedy for ApiError {
    fn hint(&self) -> Option<Cow<'_, str>> {
        self.remedy().map(Cow::Owned)
    }
}

fn render_details(out: &mut String, details: &[ErrorBody], depth: usize) {
    for d in details {
        let indent = "  ".repeat(depth);
        let _ = write!(out, "\n{indent}- ");
        if let Some(target) = d.target.as_deref().filter(|t| !t.is_empty()) {
            let _ = write!(out, "{target}: ");
        }
        match (d.message.is_empty(), d.code.is_empty()) {
            (false, false) => {
                let _ = write!(out, "{} ({})", d.message, d.code);
            }
            (false, true) => out.push_str(&d.message),
            (true, _) => out.push_str(&d.code),
        }
        render_details(out, &d.details, depth + 1);
    }
}

/// The text between `marker` and the next `'`.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let len = text[start..].find('\'')?;
    Some(&text[start..start + len])
}

/// The integer right after `marker` (skipping a quote), e.g. `available capacity '0'`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .trim_start_matches('\'')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Azure OpenAI's quota messages come in two wordings (recorded in public issues):
/// "This operation require 10 new capacity in quota Tokens Per Minute (thousands) - gpt-4o-mini,
/// which is bigger than the current available capacity 0. The current quota usage is 30 and the
/// quota limit is 30 for quota …" and "The specified capacity '1' of account deployment is bigger
/// than available capacity '0' for UsageName 'Tokens Per Minute (thousands) - GPT-35-Turbo'."
fn quota_hint(message: &str) -> String {
    let requested =
        number_after(message, "require ").or_else(|| number_after(message, "specified capacity "));
    let available = number_after(message, "available capacity ");
    let usage = number_after(message, "quota usage is ");
    let limit = number_after(message, "quota limit is ");
    let quota = message
        .find("in quota ")
        .map(|i| &message[i + "in quota ".len()..])
        .and_then(|rest| rest.split(", which").next())
        .or_else(|| quoted_after(message, "UsageName '"));
    let mut facts = Vec::new();
    if let Some(q) = quota {
        facts.push(format!("quota '{q}'"));
    }
    if let Some(n) = requested {
        facts.push(format!("requested {n}"));
    }
    if let Some(n) = available {
        facts.push(format!("available {n}"));
    }
    match (usage, limit) {
        (Some(u), Some(l)) => facts.push(format!("in use {u} of {l}")),
        (None, Some(l)) => facts.push(format!("limit {l}")),
        _ => {}
    }
    let facts = if facts.is_empty() {
        String::new()
    } else {
        format!("{}; ", facts.join(", "))
    };
    format!(
        "{facts}lower the deployment's capacity, free capacity held by other deployments (a \
         soft-deleted account keeps its quota until purged: `az cognitiveservices account purge`), request \
         more quota, or use another region"
    )
}

/// "The client '…' with object id '…' does not have authorization to perform action
/// '<action>' over scope '<scope>' or the scope is invalid."
fn authorization_hint(message: &str) -> String {
    let action = quoted_after(message, "perform action '");
    let scope = quoted_after(message, "over scope '");
    let role = action.map_or("Contributor", role_for);
    match (action, scope) {
        (Some(action), Some(scope)) => format!(
            "your identity may not perform '{action}' on '{scope}'; it needs {role} on that \
             scope or a parent, then a fresh sign-in so the new role is in the token"
        ),
        _ => format!(
            "your identity lacks a role on the target scope (usually {role}); grant it, then \
             sign in again so the new role is in the token"
        ),
    }
}

/// The least built-in role that grants `action`, for the resource providers provision uses.
fn role_for(action: &str) -> &'static str {
    let action = action.to_ascii_lowercase();
    if action.starts_with("microsoft.authorization/roleassignments/") && !action.ends_with("/read")
    {
        "Role Based Access Control Administrator (or User Access Administrator, or Owner)"
    } else if action.ends_with("/read") {
        "Reader"
    } else if action.starts_with("microsoft.cognitiveservices/") {
        "Cognitive Services Contributor (or Contributor)"
    } else if action.starts_with("microsoft.apimanagement/") {
        "API Management Service Contributor (or Contributor)"
    } else {
        "Contributor"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::transport::{CORRELATION_REQUEST_ID, REQUEST_ID};

    fn arm(status: u16, body: serde_json::Value) -> ApiError {
        let response = WireResponse::new(status)
            .json(&body)
            .header(REQUEST_ID, "rid")
            .header(CORRELATION_REQUEST_ID, "cid");
        ApiError::from_response(Service::Arm, &response)
    }

    #[test]
    fn validation_error_prints_every_detail() {
        let error = arm(
            400,
            serde_json::json!({"error": {
                "code": "ValidationError",
                "message": "One or more fields contain incorrect values:",
                "details": [
                    {"code": "ValidationError", "target": "credentials",
                     "message": "Property 'func-ecs-generalutility-key' not found."},
                    {"code": "ValidationError", "target": "include-fragment",
                     "message": "Error in element 'include-fragment' on line 11, column 4: Policy fragment with id 'TokenValidator' could not be found.",
                     "details": [{"code": "Inner", "message": "nested"}]}
                ],
                "additionalInfo": [{"type": "PolicyViolation", "info": {"policyDefinitionDisplayName": "x"}}]
            }}),
        );
        assert_eq!(
            error.to_string(),
            "ARM error ValidationError (HTTP 400): One or more fields contain incorrect values:\n  \
             - credentials: Property 'func-ecs-generalutility-key' not found. (ValidationError)\n  \
             - include-fragment: Error in element 'include-fragment' on line 11, column 4: Policy \
             fragment with id 'TokenValidator' could not be found. (ValidationError)\n    \
             - nested (Inner)\n  \
             additional info: PolicyViolation\n  \
             request id rid, correlation id cid"
        );
        assert_eq!(
            error.hint().unwrap(),
            "each line above names a rejected field (target) and why; fix it in the environment \
             file, or in the policy template for policy XML errors (`provision render` shows the \
             XML sent)"
        );
        assert!(error.has_code("inner"));
    }

    #[test]
    fn graph_error_takes_its_request_id_from_inner_error() {
        let response = WireResponse::new(404).json(&serde_json::json!({"error": {
            "code": "Request_ResourceNotFound",
            "message": "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
            "innerError": {"date": "2026-01-01T00:00:00", "request-id": "g-rid", "client-request-id": "g-cid"}
        }}));
        let error = ApiError::from_response(Service::Graph, &response);
        assert_eq!(error.code(), "Request_ResourceNotFound");
        assert_eq!(
            error.to_string(),
            "Microsoft Graph error Request_ResourceNotFound (HTTP 404): Resource 'x' does not \
             exist or one of its queried reference-property objects are not present.\n  \
             request id g-rid, client request id g-cid"
        );
    }

    #[test]
    fn a_body_that_is_not_an_error_envelope_is_kept() {
        let mut response = WireResponse::new(502);
        response.body = b"<html>Bad Gateway</html>".to_vec();
        assert_eq!(
            ApiError::from_response(Service::Arm, &response).to_string(),
            "ARM error (HTTP 502): <html>Bad Gateway</html>"
        );
        assert_eq!(
            ApiError::from_response(Service::Arm, &WireResponse::new(500)).to_string(),
            "ARM error (HTTP 500): (no response body)"
        );
        let null_details = serde_json::json!({"error": {"code": "X", "message": "m", "details": null, "additionalInfo": null}});
        assert_eq!(arm(400, null_details).body.details, vec![]);
    }

    fn hint_for_code(code: &str, message: &str) -> String {
        arm(
            400,
            serde_json::json!({"error": {"code": code, "message": message}}),
        )
        .hint()
        .map(Cow::into_owned)
        .unwrap_or_default()
    }

    #[test]
    fn soft_deleted_names_point_to_purge() {
        for code in ["FlagMustBeSetForRestore", "CustomDomainInUse"] {
            assert_eq!(
                hint_for_code(code, "..."),
                "a soft-deleted Cognitive Services account still holds this name (Azure keeps \
                 deleted accounts for 48 hours); purge it (`az cognitiveservices account purge \
                 --name <account> --resource-group <group> --location <location>`), or restore \
                 it (`az cognitiveservices account recover` with the same arguments)"
            );
        }
    }

    #[test]
    fn quota_hints_carry_the_numbers() {
        assert_eq!(
            hint_for_code(
                "InsufficientQuota",
                "This operation require 10 new capacity in quota Tokens Per Minute (thousands) - \
                 GPT-4o-mini, which is bigger than the current available capacity 0. The current \
                 quota usage is 30 and the quota limit is 30 for quota Tokens Per Minute \
                 (thousands) - GPT-4o-mini."
            ),
            "quota 'Tokens Per Minute (thousands) - GPT-4o-mini', requested 10, available 0, in \
             use 30 of 30; lower the deployment's capacity, free capacity held by other \
             deployments (a soft-deleted account keeps its quota until purged: `az \
             cognitiveservices account purge`), request more quota, or use another region"
        );
        assert!(
            hint_for_code(
                "InsufficientQuota",
                "The specified capacity '1' of account deployment is bigger than available \
                 capacity '0' for UsageName 'Tokens Per Minute (thousands) - GPT-35-Turbo'."
            )
            .starts_with(
                "quota 'Tokens Per Minute (thousands) - GPT-35-Turbo', requested 1, available 0; "
            )
        );
    }

    #[test]
    fn authorization_failed_names_the_missing_role() {
        assert_eq!(
            hint_for_code(
                "AuthorizationFailed",
                "The client 'me@contoso.com' with object id '1111' does not have authorization \
                 to perform action 'Microsoft.Authorization/roleAssignments/write' over scope \
                 '/subscriptions/s/resourceGroups/rg' or the scope is invalid. If access was \
                 recently granted, please refresh your credentials."
            ),
            "your identity may not perform 'Microsoft.Authorization/roleAssignments/write' on \
             '/subscriptions/s/resourceGroups/rg'; it needs Role Based Access Control \
             Administrator (or User Access Administrator, or Owner) on that scope or a parent, \
             then a fresh sign-in so the new role is in the token"
        );
        assert_eq!(
            role_for("Microsoft.CognitiveServices/accounts/write"),
            "Cognitive Services Contributor (or Contributor)"
        );
        assert_eq!(
            role_for("Microsoft.ApiManagement/service/write"),
            "API Management Service Contributor (or Contributor)"
        );
        assert_eq!(
            role_for("Microsoft.Resources/subscriptions/resourcegroups/read"),
            "Reader"
        );
        assert_eq!(
            role_for("Microsoft.Resources/subscriptions/resourcegroups/write"),
            "Contributor"
        );
    }

    #[test]
    fn other_known_codes_have_hints() {
        assert!(
            hint_for_code("PrincipalNotFound", "Principal x does not exist")
                .contains("retries this automatically")
        );
        assert!(
            hint_for_code(
                "RoleAssignmentExists",
                "The role assignment already exists."
            )
            .contains("already assigned")
        );
        assert!(
            hint_for_code(
                "ResourceGroupNotFound",
                "Resource group 'rg' could not be found."
            )
            .starts_with("the resource group does not exist")
        );
        for code in ["MissingApiVersionParameter", "InvalidApiVersionParameter"] {
            assert!(hint_for_code(code, "...").contains("bug in provision"));
        }
        assert_eq!(
            hint_for_code(
                "MissingSubscriptionRegistration",
                "The subscription is not registered to use namespace 'Microsoft.ApiManagement'."
            ),
            "register the resource provider once per subscription: `az provider register \
             --namespace Microsoft.ApiManagement`"
        );
        assert_eq!(
            hint_for_code("Conflict", "Another operation is in progress"),
            ""
        );
    }

    #[test]
    fn a_hint_in_a_detail_is_found() {
        let error = arm(
            409,
            serde_json::json!({"error": {"code": "Conflict", "message": "failed",
                "details": [{"code": "FlagMustBeSetForRestore", "message": "soft deleted"}]}}),
        );
        assert!(error.has_code("flagmustbesetforrestore"));
        assert!(
            error
                .hint()
                .unwrap()
                .ends_with("(`az cognitiveservices account recover` with the same arguments)")
        );
    }
}
