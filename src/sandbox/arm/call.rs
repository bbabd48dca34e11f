//! One ARM request being served: what a resource provider handler reads and changes, and the
//! services it draws on (async operations, managed identities).

use serde_json::{Map, Value, json};

use super::{ArmRequest, OperationKind};
use crate::sandbox::state::arm::Operation;
use crate::sandbox::state::{DirectoryObject, ObjectKind, State};
use crate::sandbox::{Shared, new_guid};

/// Everything a resource provider handler works with.
pub(crate) struct Call<'a> {
    pub shared: &'a Shared,
    pub state: &'a mut State,
    pub request: &'a ArmRequest,
    pub now_ms: u64,
}

impl Call<'_> {
    /// An absolute URL on the sandbox for a path and query.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.shared.base_url)
    }

    /// Wall milliseconds from now until an operation taking `sandbox_ms` of sandbox time ends.
    pub fn ends_at(&self, sandbox_ms: u64) -> u64 {
        self.now_ms + (sandbox_ms as f64 / self.shared.config.time_scale.max(1e-9)) as u64
    }

    /// Starts an async operation; under the `hostile` fault profile a share of operations end
    /// `Failed`. `status_path` builds the operation resource's path from the operation id.
    pub fn start_operation(
        &mut self,
        spec: OperationSpec<'_>,
        status_path: impl FnOnce(&str) -> String,
    ) -> Operation {
        let id = new_guid();
        let until_ms = self.ends_at(self.shared.config.operation_ms(spec.kind));
        let error = self
            .shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_operation()
            .then(|| {
                json!({
                    "code": "InternalServerError",
                    "message": "The operation failed because of an internal error. Please retry. (The sandbox's hostile fault profile failed this operation.)"
                })
            });
        let operation = Operation {
            status_path: status_path(&id),
            id: id.clone(),
            resource_id: spec.resource_id.to_owned(),
            running_status: spec.running_status.to_owned(),
            started_ms: self.now_ms,
            until_ms,
            error,
            final_status: spec.final_status,
            final_body: spec.final_body,
            location_only: spec.location_only,
        };
        self.state.arm.operations.insert(id, operation.clone());
        operation
    }

    /// Registers a system-assigned managed identity's service principal in the sandbox tenant
    /// (subject to the replication lag, as a real one is) and returns the `identity` object.
    pub fn managed_identity(&mut self, resource_id: &str, display_name: &str) -> Value {
        let tenant = self.state.operator.tenant_id.clone();
        let principal = new_guid();
        let app_id = new_guid();
        let mut body = Map::new();
        body.insert("id".into(), json!(principal));
        body.insert("appId".into(), json!(app_id));
        body.insert("displayName".into(), json!(display_name));
        body.insert("servicePrincipalType".into(), json!("ManagedIdentity"));
        body.insert("accountEnabled".into(), json!(true));
        body.insert(
            "alternativeNames".into(),
            json!(["isExplicit=False", resource_id]),
        );
        body.insert("servicePrincipalNames".into(), json!([app_id]));
        self.state.objects.push(DirectoryObject {
            kind: ObjectKind::ServicePrincipal,
            tenant_id: tenant.clone(),
            created_ms: self.now_ms,
            deleted_ms: None,
            body,
        });
        json!({ "type": "SystemAssigned", "principalId": principal, "tenantId": tenant })
    }
}

/// What an async operation is, for [`Call::start_operation`].
pub(crate) struct OperationSpec<'a> {
    pub resource_id: &'a str,
    /// The provider's word for "running" (`Creating`, `InProgress`, `Deleting`…).
    pub running_status: &'a str,
    pub kind: OperationKind,
    /// What the `Location` URL answers on success, and whether with the resource's body.
    pub final_status: u16,
    pub final_body: bool,
    /// The operation URL answers as a `Location` (202 while running) even without
    /// `operationResultResponseType=Location`: resource group deletes and APIM service creates.
    pub location_only: bool,
}
