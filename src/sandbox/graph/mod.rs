//! Microsoft Graph v1.0, the part `provision` drives: applications (with the `uniqueName` upsert
//! and their federated identity credentials), service principals and the deleted-items bin, each scoped to the caller's tenant.
//!
//! What makes the real Graph awkward to script against is reproduced on purpose, so a client's
//! retries and the order of its writes are tested rather than assumed (entra.md §1, §2.2):
//! reads by alternate key and `$filter` lag behind writes, soft-deleted apps keep their
//! identifier URIs, a preauthorization can't name a scope added by the same request, and an
//! enabled scope can't be dropped.
//!
//! One catch-all route with its own path parsing: alternate keys such as
//! `applications(uniqueName='x')` are not path segments a router can match.

mod address;
mod answer;
mod federated;
mod filter;
mod grants;

pub(crate) use grants::granted_roles;
mod objects;
mod owners;
mod rules;

pub(crate) use federated::credentials_of as federated_credentials_of;
pub(crate) use objects::purge_expired;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::any;

use super::Shared;
use super::auth;
use super::state::ObjectKind;

use address::{Key, Options, Target, annotated, parse_target, project};
use answer::{Exchange, Failure, timestamp};
use filter::parse_filter;
use objects::Call;
use rules::{
    application_template, check_entitlements, check_properties, check_unique, list, merge,
    mirrored_from, service_principal_template, strings, template_for,
};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/v1.0/{*rest}", any(handle))
}

/// Graph's content type: clients that check for `application/json` accept it.
const CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// What Graph answers for apps created without one (its own create sample shows it).
const DEFAULT_AUDIENCE: &str = "AzureADandPersonalMicrosoftAccount";
const AUDIENCES: [&str; 4] = [
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
];

/// Properties the directory assigns. A client that reads an object and writes it back whole sends
/// them unchanged, which is accepted; changing one is refused.
const APPLICATION_READ_ONLY: [&str; 5] = [
    "id",
    "appId",
    "createdDateTime",
    "deletedDateTime",
    "publisherDomain",
];
const SERVICE_PRINCIPAL_READ_ONLY: [&str; 6] = [
    "id",
    "appId",
    "appOwnerOrganizationId",
    "appDisplayName",
    "deletedDateTime",
    "signInAudience",
];
/// Collections whose items must be strings.
const STRING_LISTS: [&str; 6] = [
    "identifierUris",
    "tags",
    "servicePrincipalNames",
    "replyUrls",
    "alternativeNames",
    "notificationEmailAddresses",
];

fn collection(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "applications",
        ObjectKind::ServicePrincipal => "servicePrincipals",
    }
}

fn type_name(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "application",
        ObjectKind::ServicePrincipal => "servicePrincipal",
    }
}

/// The entity name Graph's validation messages use.
fn resource(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Application => "Application",
        ObjectKind::ServicePrincipal => "ServicePrincipal",
    }
}

/// What `$filter` may test: single-valued properties with `eq`/`startswith`, multi-valued ones
/// only through `any` (as Graph requires).
fn filterable(kind: ObjectKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        ObjectKind::Application => (
            &[
                "id",
                "appId",
                "displayName",
                "uniqueName",
                "signInAudience",
                "publisherDomain",
            ],
            &["identifierUris", "tags"],
        ),
        ObjectKind::ServicePrincipal => (
            &[
                "id",
                "appId",
                "displayName",
                "servicePrincipalType",
                "appOwnerOrganizationId",
            ],
            &["servicePrincipalNames", "tags"],
        ),
    }
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let exchange = Exchange::new(&shared, &headers);
    match serve(&shared, &exchange, &method, &uri, &headers, &body) {
        Ok(response) => response,
        Err(failure) => exchange.fail(failure),
    }
}

fn serve(
    shared: &Shared,
    exchange: &Exchange,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Failure> {
    let caller = auth::verify_bearer(shared, headers, &auth::GRAPH_AUDIENCES).map_err(|e| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            e.message(),
        )
    })?;
    let tenant = {
        let state = shared.settled_state();
        state
            .tenant(&caller.tenant)
            .map_or(caller.tenant, |t| t.id.clone())
    };
    let target = parse_target(uri.path())?;
    let access = grants::access(&shared.state(), &tenant, caller.object_id.as_deref());
    let mut call = Call {
        shared,
        exchange,
        tenant,
        headers,
        body,
        options: Options::parse(uri)?,
        creator: None,
    };
    grants::authorize(&call, method.as_str(), &target, &access)?;
    if let grants::Access::OwnedBy(owner) = &access {
        call.creator = Some(owner.clone());
    }
    use ObjectKind::{Application, ServicePrincipal};
    match (method.as_str(), target) {
        ("GET", Target::Item(ServicePrincipal, Key::AppId(app_id)))
            if app_id.eq_ignore_ascii_case(grants::GRAPH_APP_ID) =>
        {
            Ok(call.graph_service_principal())
        }
        (method, Target::AppRoleAssignments(principal)) => {
            call.app_role_assignments(method, &principal, &access)
        }
        ("GET", Target::Collection(kind)) => call.list(kind),
        ("POST", Target::Collection(Application)) => call.post_application(),
        ("POST", Target::Collection(ServicePrincipal)) => call.post_service_principal(),
        ("GET", Target::Item(kind, key)) => call.get(kind, &key),
        ("PATCH", Target::Item(Application, key)) => call.patch_application(&key),
        ("PATCH", Target::Item(ServicePrincipal, key)) => call.patch_service_principal(&key),
        ("DELETE", Target::Item(kind, key)) => call.delete(kind, &key),
        ("GET", Target::Deleted(kind)) => call.list_deleted(kind),
        ("GET", Target::DeletedItem(id)) => call.get_deleted(&id),
        ("DELETE", Target::DeletedItem(id)) => call.purge(&id),
        ("POST", Target::Restore(id)) => call.restore(&id),
        (method, Target::Federated(app, item)) => call.federated(method, &app, item.as_ref()),
        (method, Target::Owners(app, path)) => call.owners(method, &app, &path),
        _ => Err(Failure::method_not_allowed()),
    }
}
