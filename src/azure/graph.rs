//! The Microsoft Graph client for app registrations and service principals.
//!
//! Writes are upserts by alternate key (`uniqueName` for applications, `appId` for service
//! principals) with `Prefer: create-if-missing`, so a retried or re-run write can never create a
//! second object. Reads by alternate key are answered by replicas that lag behind writes by
//! seconds to minutes; the named waits ([`GraphClient::app_is_readable`],
//! [`GraphClient::service_principal_exists`], [`GraphClient::principal_visible_to_arm`]) absorb
//! that lag with a timeout and a message that names the condition.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::retry::Replay;
use super::session::{Probe, Session, WireError, json_body};
use super::transport::{Method, WireRequest};
use crate::access::{Service, odata_key, query_value};
use crate::cloud::CloudEndpoints;

/// How long a named wait gives a new object to replicate. Entra documents no bound ("There are
/// no documented replication SLAs"); five minutes covers what users report.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(300);

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Upserted {
    /// 201: the object is new; Graph returns it whole.
    Created(Value),
    /// 204: it existed and was updated; Graph returns nothing.
    Updated,
}

/// Graph v1.0, for one command.
#[derive(Clone)]
pub struct GraphClient {
    session: Arc<Session>,
    base: String,
    scope: String,
}

impl GraphClient {
    pub fn new(session: Arc<Session>, endpoints: &CloudEndpoints) -> GraphClient {
        GraphClient {
            session,
            base: endpoints.graph_v1(),
            scope: endpoints.graph_scope(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates or updates the application with this `uniqueName`.
    pub async fn upsert_application(
        &self,
        unique_name: &str,
        body: &Value,
    ) -> Result<Upserted, WireError> {
        let path = format!("/applications(uniqueName='{}')", odata_key(unique_name));
        self.upsert(&path, body).await
    }

    /// Creates or updates the service principal of `app_id` (see [`GraphClient::upsert`] for
    /// the replication wait).
    pub async fn upsert_service_principal(
        &self,
        app_id: &str,
        body: &Value,
    ) -> Result<Upserted, WireError> {
        let path = format!("/servicePrincipals(appId='{}')", odata_key(app_id));
        self.upsert(&path, body).await
    }

    /// Creates or updates the object at `path` (`/applications(uniqueName='…')`,
    /// `/servicePrincipals(appId='…')`). Right after an application was created, Graph may
    /// answer 400 `NoBackingApplicationObject` to its service principal until the application
    /// has replicated; that is waited out for up to [`REPLICATION_TIMEOUT`].
    pub async fn upsert(&self, path: &str, body: &Value) -> Result<Upserted, WireError> {
        self.session
            .until(
                &format!("the application behind {path} to replicate"),
                REPLICATION_TIMEOUT,
                || async {
                    match self.upsert_once(path, body, path).await {
                        Err(e) if e.has_code("NoBackingApplicationObject") => Ok(Probe::NotYet(
                            "HTTP 400 NoBackingApplicationObject".to_owned(),
                        )),
                        other => other.map(Probe::Ready),
                    }
                },
            )
            .await
    }

    /// The object at `path`, or `None` on 404 (which, for a read by alternate key, may also mean
    /// a replica has not seen it yet).
    pub async fn get(&self, path: &str) -> Result<Option<Value>, WireError> {
        self.get_optional(path).await
    }

    /// Sets the properties in `body` on the object at `path` (`PATCH`, 204). A Graph PATCH sets
    /// the properties it names, so repeating it is harmless. Right after the object was created,
    /// the replica that takes the write may not know it yet (404 `Request_ResourceNotFound`);
    /// that is waited out for up to [`REPLICATION_TIMEOUT`].
    pub async fn patch(&self, path: &str, body: &Value) -> Result<(), WireError> {
        let request = WireRequest::new(Method::Patch, self.url(path)).json(body);
        let what = format!("{path} to be updated");
        self.session
            .until(
                &format!("{path} to be writable in Microsoft Graph"),
                REPLICATION_TIMEOUT,
                || async {
                    match self
                        .session
                        .expect_success(Service::Graph, &self.scope, &request, Replay::Safe, &what)
                        .await
                    {
                        Err(e) if e.status() == Some(404) => Ok(Probe::NotYet(
                            "HTTP 404 Request_ResourceNotFound".to_owned(),
                        )),
                        other => other.map(|_| Probe::Ready(())),
                    }
                },
            )
            .await
    }

    /// The application with this `uniqueName`, if a replica has it.
    pub async fn application_by_unique_name(
        &self,
        unique_name: &str,
    ) -> Result<Option<Value>, WireError> {
        self.get_optional(&format!(
            "/applications(uniqueName='{}')",
            odata_key(unique_name)
        ))
        .await
    }

    /// Creates an object with a POST and returns it. Not repeated on a lost answer: a second
    /// POST would make a second object or be refused as a duplicate.
    pub async fn create(&self, path: &str, body: &Value) -> Result<Value, WireError> {
        let request = WireRequest::new(Method::Post, self.url(path)).json(body);
        let response = self
            .session
            .expect_success(
                Service::Graph,
                &self.scope,
                &request,
                Replay::ByMethod,
                path,
            )
            .await?;
        json_body(&request, &response)
    }

    /// The object ids of an application's owners.
    pub async fn owners(&self, object_id: &str) -> Result<Vec<String>, WireError> {
        let owners = self
            .list(&format!("/applications/{}/owners", odata_key(object_id)))
            .await?;
        Ok(owners
            .iter()
            .filter_map(|o| o.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Makes `owner` an owner of the application (`POST …/owners/$ref`). Graph refuses an owner
    /// that is one already with 400; a repeated request is taken as done, so a retry after a
    /// lost answer is harmless.
    pub async fn add_owner(&self, object_id: &str, owner: &str) -> Result<(), WireError> {
        let body = serde_json::json!({
            "@odata.id": format!("{}/directoryObjects/{owner}", self.base),
        });
        let request = WireRequest::new(
            Method::Post,
            self.url(&format!(
                "/applications/{}/owners/$ref",
                odata_key(object_id)
            )),
        )
        .json(&body);
        match self
            .session
            .expect_success(
                Service::Graph,
                &self.scope,
                &request,
                Replay::Safe,
                "an application owner to be added",
            )
            .await
        {
            Err(e) if e.to_string().contains("references already exist") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The application with this client id, if a replica has it.
    pub async fn application_by_app_id(&self, app_id: &str) -> Result<Option<Value>, WireError> {
        self.get_optional(&format!("/applications(appId='{}')", odata_key(app_id)))
            .await
    }

    /// The service principal of this client id, if a replica has it.
    pub async fn service_principal_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Option<Value>, WireError> {
        self.get_optional(&format!(
            "/servicePrincipals(appId='{}')",
            odata_key(app_id)
        ))
        .await
    }

    /// Updates an application by object id (`PATCH /applications/{id}`, 204).
    pub async fn update_application(&self, object_id: &str, body: &Value) -> Result<(), WireError> {
        self.patch(&format!("/applications/{}", odata_key(object_id)), body)
            .await
    }

    /// Soft-deletes an application (it stays in deleted items for 30 days, holding its
    /// identifier URIs). A 404 means there was nothing to delete.
    pub async fn delete_application(&self, object_id: &str) -> Result<bool, WireError> {
        self.delete(&format!("/applications/{}", odata_key(object_id)))
            .await
    }

    /// Deletes a service principal. Purging its application does not do this.
    pub async fn delete_service_principal(&self, object_id: &str) -> Result<bool, WireError> {
        self.delete(&format!("/servicePrincipals/{}", odata_key(object_id)))
            .await
    }

    /// Soft-deleted applications, optionally narrowed by an OData `$filter`.
    pub async fn deleted_applications(
        &self,
        filter: Option<&str>,
    ) -> Result<Vec<Value>, WireError> {
        let mut path = "/directory/deletedItems/microsoft.graph.application".to_owned();
        if let Some(filter) = filter {
            path.push_str("?$filter=");
            path.push_str(&query_value(filter));
        }
        self.list(&path).await
    }

    /// Soft-deleted service principals narrowed by an OData `$filter` (`appId eq '…' or …`): a
    /// service principal carries no tags of the application's, so its application's `appId` is
    /// how it is found.
    pub async fn deleted_service_principals(&self, filter: &str) -> Result<Vec<Value>, WireError> {
        self.list(&format!(
            "/directory/deletedItems/microsoft.graph.servicePrincipal?$filter={}",
            query_value(filter)
        ))
        .await
    }

    /// Applications narrowed by an OData `$filter` (`tags/any(t:t eq '…')`).
    pub async fn applications(&self, filter: &str) -> Result<Vec<Value>, WireError> {
        self.list(&format!("/applications?$filter={}", query_value(filter)))
            .await
    }

    /// Restores a soft-deleted application or service principal.
    pub async fn restore_deleted(&self, object_id: &str) -> Result<Value, WireError> {
        let request = WireRequest::new(
            Method::Post,
            self.url(&format!(
                "/directory/deletedItems/{}/restore",
                odata_key(object_id)
            )),
        );
        // A second restore of a restored object answers 404, not a duplicate: safe to repeat.
        let response = self
            .session
            .expect_success(
                Service::Graph,
                &self.scope,
                &request,
                Replay::Safe,
                &format!("deleted object {object_id} to be restored"),
            )
            .await?;
        json_body(&request, &response)
    }

    /// Deletes a soft-deleted object for good. A 404 means it was already gone.
    pub async fn purge_deleted(&self, object_id: &str) -> Result<bool, WireError> {
        self.delete(&format!("/directory/deletedItems/{}", odata_key(object_id)))
            .await
    }

    /// Waits until a replica can read the application `app_id` (reads by `appId`, token requests
    /// for it, and service principal creation all need that).
    pub async fn app_is_readable(
        &self,
        app_id: &str,
        timeout: Duration,
    ) -> Result<Value, WireError> {
        self.readable(
            &format!("/applications(appId='{}')", odata_key(app_id)),
            &format!("application {app_id} to be readable in Microsoft Graph"),
            timeout,
        )
        .await
    }

    /// Waits until the service principal of `app_id` can be read.
    pub async fn service_principal_exists(
        &self,
        app_id: &str,
        timeout: Duration,
    ) -> Result<Value, WireError> {
        self.readable(
            &format!("/servicePrincipals(appId='{}')", odata_key(app_id)),
            &format!("the service principal of application {app_id} to exist"),
            timeout,
        )
        .await
    }

    /// Waits until a replica answers a GET of `path` with the object; `condition` names the wait
    /// in the message when `timeout` expires.
    pub async fn readable(
        &self,
        path: &str,
        condition: &str,
        timeout: Duration,
    ) -> Result<Value, WireError> {
        self.session
            .until(condition, timeout, || async {
                Ok(match self.get_optional(path).await? {
                    Some(value) => Probe::Ready(value),
                    None => Probe::NotYet("HTTP 404 Request_ResourceNotFound".to_owned()),
                })
            })
            .await
    }

    /// Waits until the service principal with object id `object_id` (for example a managed
    /// identity) shows up in directory queries. ARM reads the directory through the same kind of
    /// replica, so this is the Graph-side sign that a role assignment will find the principal;
    /// the role assignment write still retries `PrincipalNotFound` for the rest of the lag.
    pub async fn principal_visible_to_arm(
        &self,
        object_id: &str,
        timeout: Duration,
    ) -> Result<Value, WireError> {
        let path = format!(
            "/servicePrincipals?$filter={}",
            query_value(&format!("id eq '{}'", object_id.replace('\'', "''")))
        );
        self.session
            .until(
                &format!("principal {object_id} to be visible to Azure Resource Manager"),
                timeout,
                || async {
                    Ok(match self.list(&path).await?.into_iter().next() {
                        Some(sp) => Probe::Ready(sp),
                        None => Probe::NotYet("not in directory queries yet".to_owned()),
                    })
                },
            )
            .await
    }

    async fn upsert_once(
        &self,
        path: &str,
        body: &Value,
        what: &str,
    ) -> Result<Upserted, WireError> {
        let request = WireRequest::new(Method::Patch, self.url(path))
            .header("prefer", "create-if-missing")
            .json(body);
        // The upsert is keyed by an alternate key: repeating it updates what the first created.
        let response = self
            .session
            .expect_success(Service::Graph, &self.scope, &request, Replay::Safe, what)
            .await?;
        if response.status == 201 {
            json_body(&request, &response).map(Upserted::Created)
        } else {
            Ok(Upserted::Updated)
        }
    }

    async fn get_optional(&self, path: &str) -> Result<Option<Value>, WireError> {
        let request = WireRequest::new(Method::Get, self.url(path));
        let response = self
            .session
            .send(&self.scope, &request, Replay::ByMethod, path)
            .await?;
        match response.status {
            404 => Ok(None),
            _ if response.is_success() => json_body(&request, &response).map(Some),
            _ => Err(WireError::refused(Service::Graph, &request, &response)),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<Value>, WireError> {
        let mut items = Vec::new();
        let mut url = self.url(path);
        loop {
            let request = WireRequest::new(Method::Get, &url);
            let response = self
                .session
                .expect_success(
                    Service::Graph,
                    &self.scope,
                    &request,
                    Replay::ByMethod,
                    path,
                )
                .await?;
            let page = json_body(&request, &response)?;
            if let Some(values) = page.get("value").and_then(Value::as_array) {
                items.extend(values.iter().cloned());
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => {
                    super::session::check_origin(&url, next)?;
                    url = next.to_owned();
                }
                None => return Ok(items),
            }
        }
    }

    async fn delete(&self, path: &str) -> Result<bool, WireError> {
        let request = WireRequest::new(Method::Delete, self.url(path));
        let response = self
            .session
            .send(&self.scope, &request, Replay::ByMethod, path)
            .await?;
        match response.status {
            404 => Ok(false),
            _ if response.is_success() => Ok(true),
            _ => Err(WireError::refused(Service::Graph, &request, &response)),
        }
    }
}
