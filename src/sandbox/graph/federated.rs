//! `applications/{id}/federatedIdentityCredentials`: the trust a CI's OIDC tokens are exchanged
//! under (issuer + subject + audience), with the rules Graph enforces on them.
//!
//! The shape and limits are Graph's (learn.microsoft.com/graph/api/resources/federatedidentitycredential,
//! and "A maximum of 20 federated identity credentials can be added to an application or
//! user-assigned managed identity", federatedidentitycredentials-overview). The error bodies are
//! the ones Graph was seen to give: a second credential of the same name is 409
//! `Request_MultipleObjectsWithSameKeyValue` "FederatedIdentityCredential with name main already
//! exists." (Azure/azure-dev#1482), the same issuer and subject twice is 400
//! `InvalidFederatedIdentityCredentialValue` (Azure/azure-workload-identity#434), and anything
//! but one audience is 400 `InvalidFederatedIdentityCredentialsAudienceLength` (Azure/azure-cli#31598).
//! No public record of the 21st credential's answer was found; the sandbox answers 400
//! `Request_BadRequest` in the same style.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::address::CredentialKey;
use super::{Failure, Key, annotated};
use crate::sandbox::new_guid;
use crate::sandbox::state::{FederatedCredential, ObjectKind, State};

use super::objects::Call;

/// Graph's limit per application.
pub(crate) const MAX_PER_APPLICATION: usize = 20;
/// `name`: "has a limit of 120 characters and must be URL friendly" (federatedidentitycredential).
const NAME_MAX: usize = 120;
/// `issuer`, `subject` and each audience: "has a limit of 600 characters".
const VALUE_MAX: usize = 600;
const PROPERTIES: [&str; 6] = [
    "id",
    "name",
    "issuer",
    "subject",
    "description",
    "audiences",
];

impl Call<'_> {
    /// The live application a credential request names, by its object id.
    fn credential_owner(&self, state: &State, app: &Key) -> Result<String, Failure> {
        Self::check_object_id(app)?;
        let index = self
            .find(state, ObjectKind::Application, app, false)
            .ok_or_else(|| Failure::not_found(app.value()))?;
        Ok(state.objects[index].id().to_owned())
    }

    fn credential_context(&self, app_id: &str, entity: bool) -> String {
        let suffix = if entity { "/$entity" } else { "" };
        self.exchange.context(&format!(
            "applications('{app_id}')/federatedIdentityCredentials{suffix}"
        ))
    }

    pub(super) fn federated(
        &self,
        method: &str,
        app: &Key,
        item: Option<&CredentialKey>,
    ) -> Result<Response, Failure> {
        match (method, item) {
            ("GET", None) => self.list_credentials(app),
            ("POST", None) => self.create_credential(app),
            ("GET", Some(key)) => self.get_credential(app, key),
            ("PATCH", Some(key)) => self.update_credential(app, key),
            ("DELETE", Some(key)) => self.delete_credential(app, key),
            _ => Err(Failure::method_not_allowed()),
        }
    }

    fn list_credentials(&self, app: &Key) -> Result<Response, Failure> {
        let state = self.shared.state();
        let owner = self.credential_owner(&state, app)?;
        let value: Vec<Value> = credentials_of(&state, &self.tenant, &owner)
            .map(|c| Value::Object(c.body.clone()))
            .collect();
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(json!({
                "@odata.context": self.credential_context(&owner, false),
                "value": value,
            })),
        ))
    }

    fn create_credential(&self, app: &Key) -> Result<Response, Failure> {
        self.insert_credential(app, self.json_body()?)
    }

    fn insert_credential(&self, app: &Key, body: Map<String, Value>) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let owner = self.credential_owner(&state, app)?;
        let mut credential = Map::new();
        credential.insert("id".into(), json!(new_guid()));
        credential.insert("name".into(), Value::Null);
        credential.insert("issuer".into(), Value::Null);
        credential.insert("subject".into(), Value::Null);
        credential.insert("description".into(), Value::Null);
        credential.insert("audiences".into(), json!([]));
        apply(&mut credential, body, true)?;
        check_credential(&state, &self.tenant, &owner, &credential)?;
        if credentials_of(&state, &self.tenant, &owner).count() >= MAX_PER_APPLICATION {
            return Err(Failure::bad_request(format!(
                "An application can have at most {MAX_PER_APPLICATION} federated identity credentials."
            )));
        }
        state.federated_credentials.push(FederatedCredential {
            tenant_id: self.tenant.clone(),
            application_id: owner.clone(),
            body: credential.clone(),
        });
        self.shared.persist(&state);
        Ok(self.exchange.answer(
            StatusCode::CREATED,
            Some(annotated(
                &[("@odata.context", self.credential_context(&owner, true))],
                &credential,
            )),
        ))
    }

    fn credential_index(
        &self,
        state: &State,
        owner: &str,
        key: &CredentialKey,
    ) -> Result<usize, Failure> {
        state
            .federated_credentials
            .iter()
            .position(|c| {
                c.tenant_id == self.tenant
                    && c.application_id == owner
                    && match key {
                        CredentialKey::Id(id) => field(&c.body, "id").eq_ignore_ascii_case(id),
                        // Names are compared as Graph stores them: case-insensitively.
                        CredentialKey::Name(name) => {
                            field(&c.body, "name").eq_ignore_ascii_case(name)
                        }
                    }
            })
            .ok_or_else(|| {
                Failure::not_found(match key {
                    CredentialKey::Id(v) | CredentialKey::Name(v) => v,
                })
            })
    }

    fn get_credential(&self, app: &Key, key: &CredentialKey) -> Result<Response, Failure> {
        let state = self.shared.state();
        let owner = self.credential_owner(&state, app)?;
        let index = self.credential_index(&state, &owner, key)?;
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[("@odata.context", self.credential_context(&owner, true))],
                &state.federated_credentials[index].body,
            )),
        ))
    }

    /// PATCH by id updates; PATCH by name with `Prefer: create-if-missing` is Graph's upsert
    /// (federatedidentitycredential-upsert), what an idempotent bootstrap sends.
    fn update_credential(&self, app: &Key, key: &CredentialKey) -> Result<Response, Failure> {
        let body = self.json_body()?;
        let mut state = self.shared.state();
        let owner = self.credential_owner(&state, app)?;
        let index = match (self.credential_index(&state, &owner, key), key) {
            (Err(_), CredentialKey::Name(name)) if self.prefers_create() => {
                drop(state);
                let mut body = body;
                if body
                    .get("name")
                    .is_some_and(|given| given.as_str() != Some(name.as_str()))
                {
                    return Err(Failure::bad_request(
                        "The name in the request body differs from the one in the URL.",
                    ));
                }
                body.insert("name".into(), json!(name));
                return self.insert_credential(app, body);
            }
            (found, _) => found?,
        };
        let mut after = state.federated_credentials[index].body.clone();
        apply(&mut after, body, false)?;
        check_credential(&state, &self.tenant, &owner, &after)?;
        state.federated_credentials[index].body = after;
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }

    fn delete_credential(&self, app: &Key, key: &CredentialKey) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let owner = self.credential_owner(&state, app)?;
        let index = self.credential_index(&state, &owner, key)?;
        state.federated_credentials.remove(index);
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }
}

/// The credentials of one application.
pub(crate) fn credentials_of<'a>(
    state: &'a State,
    tenant: &'a str,
    application_id: &'a str,
) -> impl Iterator<Item = &'a FederatedCredential> + 'a {
    state
        .federated_credentials
        .iter()
        .filter(move |c| c.tenant_id == tenant && c.application_id == application_id)
}

fn field<'a>(body: &'a Map<String, Value>, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn invalid(property: &str) -> Failure {
    Failure::bad_request(format!(
        "Invalid value specified for property '{property}' of resource 'FederatedIdentityCredential'."
    ))
}

/// Writes the given properties over `credential`, refusing unknown ones, `id`, and a new `name`
/// ("The string is immutable after it's created").
fn apply(
    credential: &mut Map<String, Value>,
    body: Map<String, Value>,
    creating: bool,
) -> Result<(), Failure> {
    for (name, value) in body {
        if name.starts_with('@') {
            continue;
        }
        let Some(property) = PROPERTIES.iter().find(|p| p.eq_ignore_ascii_case(&name)) else {
            return Err(Failure::bad_request(format!(
                "Property '{name}' does not exist as a declared property or extension property."
            )));
        };
        let unchanged = credential.get(*property) == Some(&value);
        if *property == "id" && !unchanged {
            return Err(Failure::bad_request(
                "Property 'id' is read-only and cannot be set.",
            ));
        }
        if *property == "name" && !creating && !unchanged {
            return Err(Failure::bad_request(
                "Property 'name' of a federated identity credential cannot be changed.",
            ));
        }
        credential.insert((*property).to_owned(), value);
    }
    Ok(())
}

/// The rules a credential must meet before it is stored.
fn check_credential(
    state: &State,
    tenant: &str,
    owner: &str,
    credential: &Map<String, Value>,
) -> Result<(), Failure> {
    let name = field(credential, "name");
    let name_ok = (1..=NAME_MAX).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(invalid("name"));
    }
    for property in ["issuer", "subject"] {
        let value = field(credential, property);
        if value.trim().is_empty() || value.chars().count() > VALUE_MAX {
            return Err(invalid(property));
        }
    }
    if !matches!(
        credential.get("description"),
        None | Some(Value::Null | Value::String(_))
    ) {
        return Err(invalid("description"));
    }
    let audiences = credential
        .get("audiences")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("audiences"))?;
    if audiences.len() != 1 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "InvalidFederatedIdentityCredentialsAudienceLength",
            "Federated identity credentials must have exactly 1 audience.",
        ));
    }
    if !audiences[0]
        .as_str()
        .is_some_and(|a| !a.trim().is_empty() && a.chars().count() <= VALUE_MAX)
    {
        return Err(invalid("audiences"));
    }
    let id = field(credential, "id");
    let (issuer, subject) = (field(credential, "issuer"), field(credential, "subject"));
    for other in credentials_of(state, tenant, owner).filter(|c| field(&c.body, "id") != id) {
        if field(&other.body, "name").eq_ignore_ascii_case(name) {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                format!("FederatedIdentityCredential with name {name} already exists."),
            ));
        }
        if field(&other.body, "issuer") == issuer && field(&other.body, "subject") == subject {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "InvalidFederatedIdentityCredentialValue",
                format!(
                    "The combination of issuer and subject must be unique for the application. Issuer {issuer} and Subject: {subject} already exist. paramName: FederatedIdentityCredential.Subject, paramValue: {subject}, objectType: Microsoft.Online.DirectoryServices.Application"
                ),
            ));
        }
    }
    Ok(())
}
