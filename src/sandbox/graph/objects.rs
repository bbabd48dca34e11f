//! What each request does to the directory: list, read, create (with the `uniqueName` upsert),
//! update, soft delete, restore and purge.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{
    DEFAULT_AUDIENCE, Exchange, Failure, Key, Options, annotated, application_template,
    check_entitlements, check_properties, check_unique, collection, merge, mirrored_from,
    parse_filter, project, service_principal_template, template_for, timestamp, type_name,
};
use crate::sandbox::state::{DirectoryObject, ObjectKind, State};
use crate::sandbox::{Shared, new_guid};

/// How long a deleted application stays in the deleted-items bin before the directory purges
/// it by itself (entra.md §1: "can be restored for 30 days").
pub(super) const DELETED_RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Purges the deleted items whose retention ran out by `now_ms`, freeing their identifier URIs;
/// `true` when anything went. Checked on every request instead of on a timer, so moving the
/// sandbox's clock past the retention is exactly as if the 30 days had passed.
pub(crate) fn purge_expired(state: &mut State, now_ms: u64) -> bool {
    let before = state.objects.len();
    state.objects.retain(|o| {
        o.deleted_ms
            .is_none_or(|deleted| now_ms < deleted.saturating_add(DELETED_RETENTION_MS))
    });
    let purged = state.objects.len() != before;
    if purged {
        forget_orphaned_credentials(state);
    }
    purged
}

/// A purged application's federated credentials go with it; a soft-deleted one keeps them, to
/// have them back when it is restored.
fn forget_orphaned_credentials(state: &mut State) {
    let State {
        objects,
        federated_credentials,
        ..
    } = state;
    federated_credentials.retain(|c| {
        objects
            .iter()
            .any(|o| o.tenant_id == c.tenant_id && o.id() == c.application_id)
    });
}

/// One authenticated request.
pub(super) struct Call<'a> {
    pub(super) shared: &'a Shared,
    pub(super) exchange: &'a Exchange,
    pub(super) tenant: String,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a [u8],
    pub(super) options: Options,
    /// The caller that becomes the owner of an application it creates (an app writing with
    /// `Application.ReadWrite.OwnedBy`, `grants.rs`).
    pub(super) creator: Option<String>,
}

impl Call<'_> {
    pub(super) fn json_body(&self) -> Result<Map<String, Value>, Failure> {
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Failure::unreadable_body()),
        }
    }

    pub(super) fn prefers_create(&self) -> bool {
        self.headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("create-if-missing"))
    }

    pub(super) fn entity_context(&self, kind: ObjectKind) -> String {
        self.exchange
            .context(&format!("{}/$entity", collection(kind)))
    }

    /// The live object a key names. Reads by alternate key come from a replica that hasn't seen
    /// objects inside their replication window; writes and reads by id reach the primary.
    pub(super) fn find(
        &self,
        state: &State,
        kind: ObjectKind,
        key: &Key,
        replica: bool,
    ) -> Option<usize> {
        state.objects.iter().position(|o| {
            o.kind == kind
                && o.tenant_id == self.tenant
                && o.deleted_ms.is_none()
                && key.matches(o)
                && !(replica && key.is_alternate() && self.shared.replicating(o.created_ms))
        })
    }

    pub(super) fn find_deleted(&self, state: &State, id: &str) -> Option<usize> {
        state.objects.iter().position(|o| {
            o.tenant_id == self.tenant && o.deleted_ms.is_some() && o.id().eq_ignore_ascii_case(id)
        })
    }

    /// Graph refuses malformed object ids before looking anything up.
    pub(super) fn check_object_id(key: &Key) -> Result<(), Failure> {
        match key {
            Key::Id(id) if uuid::Uuid::parse_str(id).is_err() => Err(Failure::bad_request(
                format!("Invalid object identifier '{id}'."),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn list(&self, kind: ObjectKind) -> Result<Response, Failure> {
        let filter = self
            .options
            .filter
            .as_deref()
            .map(|f| parse_filter(f, kind))
            .transpose()?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let value: Vec<Value> = state
            .live(&self.tenant, kind)
            .filter(|o| !self.shared.replicating(o.created_ms))
            .filter(|o| filter.as_ref().is_none_or(|f| f.matches(&o.body)))
            .map(|o| project(&o.body, selection.as_deref()))
            .collect();
        let context = match &selection {
            Some(names) => format!("{}({})", collection(kind), names.join(",")),
            None => collection(kind).to_owned(),
        };
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(json!({ "@odata.context": self.exchange.context(&context), "value": value })),
        ))
    }

    pub(super) fn get(&self, kind: ObjectKind, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let index = self
            .find(&state, kind, key, true)
            .ok_or_else(|| Failure::not_found(key.value()))?;
        let body = project(&state.objects[index].body, selection.as_deref());
        let body = body.as_object().cloned().unwrap_or_default();
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[("@odata.context", self.entity_context(kind))],
                &body,
            )),
        ))
    }

    pub(super) fn created(&self, kind: ObjectKind, body: &Map<String, Value>) -> Response {
        self.exchange.answer(
            StatusCode::CREATED,
            Some(annotated(
                &[("@odata.context", self.entity_context(kind))],
                body,
            )),
        )
    }

    pub(super) fn post_application(&self) -> Result<Response, Failure> {
        let body = self.json_body()?;
        let mut state = self.shared.state();
        let app = self.create_application(&mut state, body, None)?;
        self.shared.persist(&state);
        Ok(self.created(ObjectKind::Application, &app))
    }

    pub(super) fn create_application(
        &self,
        state: &mut State,
        mut body: Map<String, Value>,
        unique_name: Option<&str>,
    ) -> Result<Map<String, Value>, Failure> {
        check_properties(ObjectKind::Application, &body, None)?;
        if !body.contains_key("displayName") {
            return Err(Failure::bad_request(
                "Property 'displayName' is required when creating an application.",
            ));
        }
        if let Some(name) = unique_name {
            if body
                .get("uniqueName")
                .and_then(Value::as_str)
                .is_some_and(|given| given != name)
            {
                return Err(Failure::bad_request(
                    "The uniqueName in the request body differs from the one in the URL.",
                ));
            }
            body.insert("uniqueName".into(), json!(name));
        }
        let audience = body
            .get("signInAudience")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_AUDIENCE);
        // Personal accounts only get v2 tokens, so Graph starts such apps at version 2.
        let version = if audience == DEFAULT_AUDIENCE {
            json!(2)
        } else {
            Value::Null
        };
        let domain = state
            .tenant(&self.tenant)
            .map(|t| t.domain.clone())
            .unwrap_or_default();
        let now = self.shared.now_ms();
        let template =
            application_template(&new_guid(), &new_guid(), &domain, &timestamp(now), version);
        let mut app = template.clone();
        merge(&mut app, body, &template);
        check_entitlements(&Map::new(), &app)?;
        let id = app["id"].as_str().unwrap_or_default().to_owned();
        check_unique(state, &self.tenant, &app, &id)?;
        if let Some(owner) = &self.creator {
            state.owners.push(crate::sandbox::state::Ownership {
                tenant_id: self.tenant.clone(),
                application_id: id.clone(),
                owner_id: owner.clone(),
            });
        }
        state.objects.push(DirectoryObject {
            kind: ObjectKind::Application,
            tenant_id: self.tenant.clone(),
            created_ms: now,
            deleted_ms: None,
            body: app.clone(),
        });
        Ok(app)
    }

    pub(super) fn update_application(
        &self,
        state: &mut State,
        index: usize,
        body: Map<String, Value>,
    ) -> Result<(), Failure> {
        let before = state.objects[index].body.clone();
        check_properties(ObjectKind::Application, &body, Some(&before))?;
        if let (Some(Value::String(old)), Some(new)) =
            (before.get("uniqueName"), body.get("uniqueName"))
            && Some(old.as_str()) != new.as_str()
        {
            return Err(Failure::bad_request(
                "Property 'uniqueName' can be set only once and is immutable afterwards.",
            ));
        }
        let text = |name: &str| before.get(name).and_then(Value::as_str).unwrap_or_default();
        let template = application_template(
            text("id"),
            text("appId"),
            text("publisherDomain"),
            text("createdDateTime"),
            Value::Null,
        );
        let mut after = before.clone();
        merge(&mut after, body, &template);
        check_entitlements(&before, &after)?;
        check_unique(state, &self.tenant, &after, text("id"))?;
        self.mirror_to_service_principal(state, &after);
        state.objects[index].body = after;
        Ok(())
    }

    /// An SP shows its app's names, scopes and roles; the directory keeps them in step.
    pub(super) fn mirror_to_service_principal(&self, state: &mut State, app: &Map<String, Value>) {
        let app_id = app.get("appId").and_then(Value::as_str).unwrap_or_default();
        let mirrored = mirrored_from(app);
        for sp in state.objects.iter_mut().filter(|o| {
            o.kind == ObjectKind::ServicePrincipal
                && o.tenant_id == self.tenant
                && o.deleted_ms.is_none()
                && o.str("appId")
                    .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
        }) {
            sp.body.extend(mirrored.clone());
        }
    }

    pub(super) fn patch_application(&self, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let body = self.json_body()?;
        let mut state = self.shared.state();
        match self.find(&state, ObjectKind::Application, key, false) {
            Some(index) => {
                self.update_application(&mut state, index, body)?;
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            None => match key {
                Key::UniqueName(name) if self.prefers_create() => {
                    let app = self.create_application(&mut state, body, Some(name))?;
                    self.shared.persist(&state);
                    Ok(self.created(ObjectKind::Application, &app))
                }
                _ => Err(Failure::not_found(key.value())),
            },
        }
    }

    pub(super) fn post_service_principal(&self) -> Result<Response, Failure> {
        let mut body = self.json_body()?;
        let app_id = match body.remove("appId") {
            Some(Value::String(app_id)) => app_id,
            _ => {
                return Err(Failure::bad_request(
                    "Property 'appId' is required when creating a service principal.",
                ));
            }
        };
        let mut state = self.shared.state();
        let sp = self.create_service_principal(&mut state, body, &app_id)?;
        self.shared.persist(&state);
        Ok(self.created(ObjectKind::ServicePrincipal, &sp))
    }

    pub(super) fn create_service_principal(
        &self,
        state: &mut State,
        body: Map<String, Value>,
        app_id: &str,
    ) -> Result<Map<String, Value>, Failure> {
        check_properties(ObjectKind::ServicePrincipal, &body, None)?;
        let app = state
            .application_by_app_id(&self.tenant, app_id)
            .filter(|app| !self.shared.replicating(app.created_ms))
            .ok_or_else(|| Failure::no_backing_application(app_id))?;
        if state
            .service_principal_by_app_id(&self.tenant, app_id)
            .is_some()
        {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                format!(
                    "The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."
                ),
            ));
        }
        let publisher = state
            .tenant(&self.tenant)
            .map(|t| t.display_name.clone())
            .unwrap_or_default();
        let template = service_principal_template(&new_guid(), &self.tenant, &publisher, &app.body);
        let mut sp = template.clone();
        merge(&mut sp, body, &template);
        state.objects.push(DirectoryObject {
            kind: ObjectKind::ServicePrincipal,
            tenant_id: self.tenant.clone(),
            created_ms: self.shared.now_ms(),
            deleted_ms: None,
            body: sp.clone(),
        });
        Ok(sp)
    }

    pub(super) fn patch_service_principal(&self, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let body = self.json_body()?;
        let mut state = self.shared.state();
        match self.find(&state, ObjectKind::ServicePrincipal, key, false) {
            Some(index) => {
                let current = &state.objects[index].body;
                check_properties(ObjectKind::ServicePrincipal, &body, Some(current))?;
                let template = template_for(ObjectKind::ServicePrincipal);
                let mut after = current.clone();
                merge(&mut after, body, &template);
                state.objects[index].body = after;
                self.shared.persist(&state);
                Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
            }
            None => match key {
                Key::AppId(app_id) if self.prefers_create() => {
                    let mut body = body;
                    if body
                        .remove("appId")
                        .is_some_and(|given| given.as_str() != Some(app_id.as_str()))
                    {
                        return Err(Failure::bad_request(
                            "The appId in the request body differs from the one in the URL.",
                        ));
                    }
                    let sp = self.create_service_principal(&mut state, body, app_id)?;
                    self.shared.persist(&state);
                    Ok(self.created(ObjectKind::ServicePrincipal, &sp))
                }
                _ => Err(Failure::not_found(key.value())),
            },
        }
    }

    /// Applications and service principals alike go to the deleted-items bin for 30 days, where
    /// they can be restored or purged ("Restore a recently deleted application, group,
    /// servicePrincipal, administrative unit, or user object from deleted items … A recently
    /// deleted item remains available for up to 30 days":
    /// learn.microsoft.com/graph/api/directory-deleteditems-restore). A managed identity's
    /// principal is not deleted here: it leaves with its resource (`arm::settle_state`).
    pub(super) fn delete(&self, kind: ObjectKind, key: &Key) -> Result<Response, Failure> {
        Self::check_object_id(key)?;
        let mut state = self.shared.state();
        let index = self
            .find(&state, kind, key, false)
            .ok_or_else(|| Failure::not_found(key.value()))?;
        let now = self.shared.now_ms();
        let object = &mut state.objects[index];
        object.deleted_ms = Some(now);
        object
            .body
            .insert("deletedDateTime".into(), json!(timestamp(now)));
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }

    pub(super) fn list_deleted(&self, kind: ObjectKind) -> Result<Response, Failure> {
        let filter = self
            .options
            .filter
            .as_deref()
            .map(|f| parse_filter(f, kind))
            .transpose()?;
        let selection = self.options.selection(kind)?;
        let state = self.shared.state();
        let value: Vec<Value> = state
            .objects
            .iter()
            .filter(|o| o.kind == kind && o.tenant_id == self.tenant && o.deleted_ms.is_some())
            .filter(|o| filter.as_ref().is_none_or(|f| f.matches(&o.body)))
            .map(|o| project(&o.body, selection.as_deref()))
            .collect();
        let context = self.exchange.context(&format!(
            "directory/deletedItems/microsoft.graph.{}",
            type_name(kind)
        ));
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(json!({ "@odata.context": context, "value": value })),
        ))
    }

    pub(super) fn deleted_index(&self, state: &State, id: &str) -> Result<usize, Failure> {
        Self::check_object_id(&Key::Id(id.to_owned()))?;
        self.find_deleted(state, id)
            .ok_or_else(|| Failure::not_found(id))
    }

    pub(super) fn get_deleted(&self, id: &str) -> Result<Response, Failure> {
        let state = self.shared.state();
        let object = &state.objects[self.deleted_index(&state, id)?];
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[
                    (
                        "@odata.context",
                        self.exchange.context("directory/deletedItems/$entity"),
                    ),
                    (
                        "@odata.type",
                        format!("#microsoft.graph.{}", type_name(object.kind)),
                    ),
                ],
                &object.body,
            )),
        ))
    }

    pub(super) fn restore(&self, id: &str) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let index = self.deleted_index(&state, id)?;
        let object = state.objects[index].clone();
        check_unique(&state, &self.tenant, &object.body, object.id())?;
        let object = &mut state.objects[index];
        object.deleted_ms = None;
        object.body.insert("deletedDateTime".into(), Value::Null);
        let kind = object.kind;
        let body = object.body.clone();
        self.shared.persist(&state);
        Ok(self.exchange.answer(
            StatusCode::OK,
            Some(annotated(
                &[
                    (
                        "@odata.context",
                        self.exchange.context("directoryObjects/$entity"),
                    ),
                    (
                        "@odata.type",
                        format!("#microsoft.graph.{}", type_name(kind)),
                    ),
                ],
                &body,
            )),
        ))
    }

    pub(super) fn purge(&self, id: &str) -> Result<Response, Failure> {
        let mut state = self.shared.state();
        let index = self.deleted_index(&state, id)?;
        state.objects.remove(index);
        forget_orphaned_credentials(&mut state);
        self.shared.persist(&state);
        Ok(self.exchange.answer(StatusCode::NO_CONTENT, None))
    }
}
