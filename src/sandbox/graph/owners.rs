//! `applications/{id}/owners`: who may manage an application besides the directory's admins.
//! A deployment identity with Graph's `Application.ReadWrite.OwnedBy` may update only the apps
//! it owns, so `provision bootstrap` adds it here (learn.microsoft.com/graph/api/application-post-owners:
//! `POST …/owners/$ref` with `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`,
//! 204; `GET …/owners`, the owners as directory objects; `DELETE …/owners/{id}/$ref`, 204).
//! Adding an owner twice is Graph's 400 "One or more added object references already exist for
//! the following modified properties: 'owners'."

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::address::OwnersPath;
use super::{Failure, Key, type_name};
use crate::sandbox::state::{ObjectKind, Ownership};

use super::objects::Call;

impl Call<'_> {
    pub(super) fn owners(
        &self,
        method: &str,
        app: &Key,
        path: &OwnersPath,
    ) -> Result<Response, Failure> {
        Self::check_object_id(app)?;
        let mut state = self.shared.state();
        let index = self
            .find(&state, ObjectKind::Application, app, false)
            .ok_or_else(|| Failure::not_found(app.value()))?;
        let application_id = state.objects[index].id().to_owned();
        let is_owner = |o: &Ownership, owner: &str| {
            o.tenant_id == self.tenant
                && o.application_id == application_id
                && o.owner_id.eq_ignore_ascii_case(owner)
        };
        match (method, path) {
            ("GET", OwnersPath::List) => {
                let value: Vec<Value> = state
                    .owners
                    .iter()
                    .filter(|o| o.tenant_id == self.tenant && o.application_id == application_id)
                    .filter_map(|o| {
                        state
                            .objects
                            .iter()
                            .find(|d| d.deleted_ms.is_none() && d.id() == o.owner_id)
                    })
                    .map(|d| {
                        let mut body = d.body.clone();
                        body.insert(
                            "@odata.type".into(),
                            json!(format!("#microsoft.graph.{}", type_name(d.kind))),
                        );
                        Value::Object(body)
                    })
                    .collect();
                Ok(self.exchange.answer(
                    StatusCode::OK,
                    Some(json!({
                        "@odata.context": self.exchange.context("directoryObjects"),
                        "value": value,
                    })),
                ))
            }
            ("POST", OwnersPath::Add) => {
                let body = self.json_body()?;
                let reference = body
                    .get("@odata.id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        Failure::bad_request(
                            "The request body must name the owner: {\"@odata.id\": \"https://graph.microsoft.com/v1.0/directoryObjects/{id}\"}.",
                        )
                    })?;
                let owner = reference
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let known = state.objects.iter().any(|d| {
                    d.tenant_id == self.tenant && d.deleted_ms.is_none() && d.id() == owner
                }) || state
                    .tenant(&self.tenant)
                    .is_some_and(|t| t.users.iter().any(|u| u.id == owner));
                if !known {
                    return Err(Failure::not_found(&owner));
                }
                if state.owners.iter().any(|o| is_owner(o, &owner)) {
                    return Err(Failure::bad_request(
                        "One or more added object references already exist for the following modified properties: 'owners'.",
                    ));
                }
                state.owners.push(Ownership {
                    tenant_id: self.tenant.clone(),
                    application_id,
                    owner_id: owner,
                });
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            ("DELETE", OwnersPath::Remove(owner)) => {
                let before = state.owners.len();
                state.owners.retain(|o| !is_owner(o, owner));
                if state.owners.len() == before {
                    return Err(Failure::not_found(owner));
                }
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            _ => Err(Failure::method_not_allowed()),
        }
    }
}
