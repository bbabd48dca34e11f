//! The model catalog: which model versions a location offers, until when, and what a deployment
//! of a version becomes as the sandbox's clock moves (docs/reference/dataplane.md §4).
//!
//! The data is `catalog.json` beside this file: Microsoft's retirement schedule as published,
//! with its source and the date it was taken. Nothing here reads the system time: "retired"
//! means the sandbox's clock has passed the version's `deprecation.inference` date, so a test
//! moves the clock past a date instead of waiting for it. Entries a test adds
//! ([`ArmState::catalog_additions`]) override the built-in ones of the same version.
//!
//! Model names the catalog does not know are deployed as before: the sandbox can not know every
//! model Azure offers, and refusing what it does not know would refuse real ones.

use std::sync::LazyLock;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::{ArmError, Call, Reply};
use super::AccountPath;
use super::accounts::live_account;
use crate::sandbox::state::arm::ArmState;

/// The service's answer when `versionUpgradeOption` is not sent (foundry-arm.md §1.5).
pub(super) const DEFAULT_UPGRADE: &str = "OnceNewDefaultVersionAvailable";
const ON_EXPIRY: &str = "OnceCurrentVersionExpired";
/// What the Models API calls a retired version (the docs' "Retired"; dataplane.md §4.1).
const RETIRED: &str = "Deprecated";
/// The docs' "Deprecated": existing customers only.
const DEPRECATING: &str = "Deprecating";
const DEFAULT_CAPACITY: u64 = 10;
const MAX_CAPACITY: u64 = 1000;

#[derive(Debug, Deserialize)]
struct CatalogFile {
    models: Vec<Entry>,
}

/// One model version as the catalog file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    pub format: String,
    pub name: String,
    pub version: String,
    lifecycle_status: String,
    pub is_default_version: bool,
    /// `YYYY-MM-DD`: inference stops (the retirement date).
    inference: String,
    fine_tune: Option<String>,
    replacement: Option<String>,
    #[serde(default)]
    sandbox_existing_customers: bool,
    #[serde(default)]
    capabilities: Map<String, Value>,
    skus: Vec<SkuEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SkuEntry {
    name: String,
    default_capacity: Option<u64>,
    max_capacity: Option<u64>,
    /// `YYYY-MM-DD`: when this deployment type stops, if before the version's own date (a
    /// regional `Standard` has retired earlier than `GlobalStandard`, dataplane.md §4.3).
    deprecation_date: Option<String>,
}

impl SkuEntry {
    fn until<'a>(&'a self, entry: &'a Entry) -> &'a str {
        self.deprecation_date.as_deref().unwrap_or(&entry.inference)
    }
}

static BUILT_IN: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    serde_json::from_str::<CatalogFile>(include_str!("catalog.json"))
        .expect("the built-in model catalog is valid (tested)")
        .models
});

/// Midnight UTC of a catalog date, in milliseconds; a date that does not parse never comes.
fn date_ms(date: &str) -> u64 {
    format!("{date}T00:00:00Z")
        .parse::<Timestamp>()
        .ok()
        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
        .unwrap_or(u64::MAX)
}

fn utc(date: &str) -> String {
    format!("{date}T00:00:00Z")
}

impl Entry {
    pub fn retired(&self, now_ms: u64) -> bool {
        now_ms >= date_ms(&self.inference)
    }

    /// The API's `lifecycleStatus` on the sandbox's clock.
    pub fn lifecycle(&self, now_ms: u64) -> &str {
        if self.retired(now_ms) {
            RETIRED
        } else {
            &self.lifecycle_status
        }
    }

    fn is(&self, format: &str, name: &str) -> bool {
        self.format.eq_ignore_ascii_case(format) && self.name.eq_ignore_ascii_case(name)
    }

    /// `AccountModel` in the shape of the REST API specification (`ListLocationModels.json`).
    fn account_model(&self, now_ms: u64) -> Value {
        let skus: Vec<Value> = self
            .skus
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "usageName": format!("OpenAI.{}.{}", s.name, self.name),
                    "deprecationDate": utc(s.until(self)),
                    "capacity": {
                        "default": s.default_capacity.unwrap_or(DEFAULT_CAPACITY),
                        "maximum": s.max_capacity.unwrap_or(MAX_CAPACITY),
                    },
                })
            })
            .collect();
        let max = self
            .skus
            .iter()
            .map(|s| s.max_capacity.unwrap_or(MAX_CAPACITY))
            .max()
            .unwrap_or(MAX_CAPACITY);
        let mut deprecation = json!({ "inference": utc(&self.inference) });
        if let Some(fine_tune) = &self.fine_tune {
            deprecation["fineTune"] = json!(utc(fine_tune));
        }
        let mut model = json!({
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "isDefaultVersion": self.is_default_version,
            "lifecycleStatus": self.lifecycle(now_ms),
            "maxCapacity": max,
            "capabilities": self.capabilities,
            "deprecation": deprecation,
            "skus": skus,
        });
        if let Some(target) = &self.replacement {
            model["replacementConfig"] = json!({ "targetModelName": target });
        }
        model
    }
}

/// The catalog in effect: the built-in one with a test's additions on top. An added default
/// version takes the default from the others of its model.
pub(crate) fn entries(arm: &ArmState) -> Vec<Entry> {
    let mut all = BUILT_IN.clone();
    for added in &arm.catalog_additions {
        let Ok(entry) = serde_json::from_value::<Entry>(added.clone()) else {
            continue;
        };
        all.retain(|e| !(e.is(&entry.format, &entry.name) && e.version == entry.version));
        if entry.is_default_version {
            for e in all.iter_mut().filter(|e| e.is(&entry.format, &entry.name)) {
                e.is_default_version = false;
            }
        }
        all.push(entry);
    }
    all
}

/// The version a deployment that names none gets, and the one upgrades move to.
fn default_of<'a>(all: &'a [Entry], format: &str, name: &str) -> Option<&'a Entry> {
    all.iter()
        .find(|e| e.is(format, name) && e.is_default_version)
}

/// The version a deployment gets when its request names none: the catalog's default ("If version
/// is not specified, a default version will be assigned", BT25), "1" for a model it does not know.
pub(super) fn default_version(arm: &ArmState, format: &str, name: &str) -> String {
    default_of(&entries(arm), format, name).map_or_else(|| "1".to_owned(), |e| e.version.clone())
}

/// `GET …/locations/{l}/models`: each model once per account kind that offers it, as the real
/// API lists them (dataplane.md §4.4). Every location offers the same catalog.
pub(super) fn list_location_models(call: &Call<'_>) -> Reply {
    let value: Vec<Value> = entries(&call.state.arm)
        .iter()
        .flat_map(|e| {
            let model = e.account_model(call.now_ms);
            ["OpenAI", "AIServices"]
                .map(|kind| json!({ "kind": kind, "skuName": "S0", "model": model }))
        })
        .collect();
    Reply::ok(json!({ "value": value }))
}

/// `GET …/accounts/{a}/models`: `AccountModel`s without the kind wrapper.
pub(super) fn list_account_models(call: &Call<'_>, path: &AccountPath) -> Result<Reply, ArmError> {
    live_account(call, path)?;
    let value: Vec<Value> = entries(&call.state.arm)
        .iter()
        .map(|e| e.account_model(call.now_ms))
        .collect();
    Ok(Reply::ok(json!({ "value": value })))
}

/// `GET …/locations/{l}/usages`: per SKU usage name of the catalog, the capacity the
/// subscription's deployments hold against the SKU's maximum as the quota (dataplane.md §4.5;
/// `limit - currentValue` is what a new deployment can take, in units of 1,000 tokens per
/// minute).
pub(super) fn list_usages(call: &Call<'_>, subscription: &str) -> Reply {
    let prefix = format!("/subscriptions/{}/", subscription.to_ascii_lowercase());
    let held = |usage: &str| -> u64 {
        call.state
            .arm
            .resources
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix) && key.contains("/deployments/"))
            .filter(|(_, r)| {
                let sku = r.body.get("sku").and_then(|s| s.get("name")).and_then(Value::as_str);
                let name = model_of(&r.body).map(|(_, n, _)| n);
                matches!((sku, name), (Some(sku), Some(name)) if format!("OpenAI.{sku}.{name}") == usage)
            })
            .filter_map(|(_, r)| r.body.get("sku")?.get("capacity")?.as_u64())
            .sum()
    };
    let mut limits: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for e in entries(&call.state.arm) {
        for s in &e.skus {
            let usage = format!("OpenAI.{}.{}", s.name, e.name);
            let limit = s.max_capacity.unwrap_or(MAX_CAPACITY);
            let slot = limits.entry(usage).or_default();
            *slot = (*slot).max(limit);
        }
    }
    let value: Vec<Value> = limits
        .into_iter()
        .map(|(usage, limit)| {
            json!({
                "name": { "value": usage, "localizedValue": usage },
                "unit": "Count",
                "currentValue": held(&usage),
                "limit": limit,
            })
        })
        .collect();
    Reply::ok(json!({ "value": value }))
}

/// `Format:OpenAI,Name:gpt-4o-mini,Version:2024-07-18`, as Azure's messages name a model.
fn spelled(format: &str, name: &str, version: &str) -> String {
    format!("Format:{format},Name:{name},Version:{version}")
}

/// Whether a deployment of `model` with `sku` may be created in `subscription` now. Refusals are
/// Azure's own codes and wording (dataplane.md §4.6: microsoft/microsoft-foundry-for-vscode#491
/// and #557, Azure/bicep-types-az#1735); their HTTP status is not recorded, 400 is ARM's for a
/// request it validates and refuses.
pub(super) fn check_deployable(
    call: &Call<'_>,
    subscription: &str,
    model: &Map<String, Value>,
    sku: &str,
) -> Result<(), ArmError> {
    let text = |k: &str| model.get(k).and_then(Value::as_str).unwrap_or_default();
    let (format, name, version) = (text("format"), text("name"), text("version"));
    let all = entries(&call.state.arm);
    if !all.iter().any(|e| e.is(format, name)) {
        return Ok(());
    }
    let Some(entry) = all
        .iter()
        .find(|e| e.is(format, name) && e.version == version)
    else {
        return Err(ArmError::bad_request(
            "DeploymentModelNotSupported",
            format!(
                "The model '{}' is not supported",
                spelled(format, name, version)
            ),
        ));
    };
    let offered = entry.skus.iter().find(|s| s.name.eq_ignore_ascii_case(sku));
    // A version retired whole, or in this deployment type (the observed message is the same).
    let until = offered.map_or(entry.inference.as_str(), |s| s.until(entry));
    if entry.retired(call.now_ms) || call.now_ms >= date_ms(until) {
        let date = if entry.retired(call.now_ms) {
            &entry.inference
        } else {
            until
        };
        let since = Timestamp::from_millisecond(i64::try_from(date_ms(date)).unwrap_or(0))
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .strftime("%m/%d/%Y %H:%M:%S");
        return Err(ArmError::bad_request(
            "ServiceModelDeprecated",
            format!(
                "The model '{}' has been deprecated since {since}.",
                spelled(format, name, version)
            ),
        ));
    }
    if entry.lifecycle_status == DEPRECATING
        && !entry.sandbox_existing_customers
        && !deployed_in(&call.state.arm, subscription, entry)
    {
        return Err(ArmError::bad_request(
            "ServiceModelDeprecating",
            format!(
                "The model '{}' is in deprecating state and cannot be used for new deployments.",
                spelled(format, name, version)
            ),
        ));
    }
    if offered.is_none() {
        return Err(ArmError::bad_request(
            "InvalidResourceProperties",
            format!(
                "The specified SKU '{sku}' of account deployment is not supported by the model '{name}' version: '{version}'."
            ),
        ));
    }
    Ok(())
}

fn model_of(body: &Map<String, Value>) -> Option<(&str, &str, &str)> {
    let model = body.get("properties")?.get("model")?;
    let text = |k: &str| model.get(k).and_then(Value::as_str);
    Some((text("format")?, text("name")?, text("version")?))
}

/// "Existing customer" is decided per subscription: one that has a deployment of the version
/// (dataplane.md §4.1).
fn deployed_in(arm: &ArmState, subscription: &str, entry: &Entry) -> bool {
    let prefix = format!("/subscriptions/{}/", subscription.to_ascii_lowercase());
    arm.resources
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix) && key.contains("/deployments/"))
        .filter_map(|(_, r)| model_of(&r.body))
        .any(|(f, n, v)| entry.is(f, n) && v == entry.version)
}

/// The version Azure moves a deployment to now, by its `versionUpgradeOption`: the model's
/// default version when it is newer and still served, on expiry of the current one, or as soon
/// as it becomes the default (dataplane.md §4.2). Never back to an older or retired version.
fn upgrade_target<'a>(
    all: &'a [Entry],
    current: (&str, &str, &str),
    option: &str,
    now_ms: u64,
) -> Option<&'a Entry> {
    let (format, name, version) = current;
    let target = default_of(all, format, name)
        .filter(|d| d.version.as_str() > version && !d.retired(now_ms))?;
    let expired = all
        .iter()
        .find(|e| e.is(format, name) && e.version == version)
        .is_some_and(|e| e.retired(now_ms));
    match option {
        DEFAULT_UPGRADE => Some(target),
        ON_EXPIRY if expired => Some(target),
        _ => None,
    }
}

/// Applies the upgrades due on the sandbox's clock to every deployment (called as ARM settles
/// time, before each request).
pub(crate) fn upgrade_due(arm: &mut ArmState, now_ms: u64) {
    if arm.resources.is_empty() {
        return;
    }
    let all = entries(arm);
    let due: Vec<(String, String)> = arm
        .resources
        .iter()
        .filter(|(key, r)| key.contains("/deployments/") && r.pending.is_none())
        .filter_map(|(key, r)| {
            let current = model_of(&r.body)?;
            let option = r
                .property_str("versionUpgradeOption")
                .unwrap_or(DEFAULT_UPGRADE);
            let target = upgrade_target(&all, current, option, now_ms)?;
            Some((key.clone(), target.version.clone()))
        })
        .collect();
    for (key, version) in due {
        let etag = arm.next_etag();
        if let Some(r) = arm.resources.get_mut(&key) {
            if let Some(model) = r
                .body
                .get_mut("properties")
                .and_then(|p| p.get_mut("model"))
                .and_then(Value::as_object_mut)
            {
                model.insert("version".into(), json!(version));
            }
            r.body.insert("etag".into(), json!(format!("\"{etag}\"")));
            r.etag = etag;
        }
    }
}

/// The refusal inference gets from a deployment whose model version is retired: `410` with
/// the code and message Azure answered (dataplane.md §2: epam/ai-dial-chat#4403).
pub(crate) fn retired_deployment(
    arm: &ArmState,
    deployment_key: &str,
    now_ms: u64,
) -> Option<(&'static str, &'static str)> {
    let (format, name, version) = model_of(&arm.resources.get(deployment_key)?.body)?;
    entries(arm)
        .iter()
        .find(|e| e.is(format, name) && e.version == version)
        .filter(|e| e.retired(now_ms))
        .map(|_| {
            (
                "ModelDeprecated",
                "The model associated with the deployment is deprecated and no longer available for use. Please refer to the Azure OpenAI service documentation for more information.",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn the_built_in_catalog_parses_and_has_one_default_per_model() {
        let all = &*BUILT_IN;
        assert!(all.len() > 20);
        for e in all {
            let defaults = all
                .iter()
                .filter(|o| o.is(&e.format, &e.name) && o.is_default_version)
                .count();
            assert_eq!(defaults, 1, "{} has {defaults} default versions", e.name);
            assert_ne!(date_ms(&e.inference), u64::MAX, "{}", e.name);
        }
    }

    #[test]
    fn a_version_is_retired_from_its_inference_date_on() {
        let arm = ArmState::default();
        let all = entries(&arm);
        let mini = all.iter().find(|e| e.name == "gpt-4o-mini").unwrap();
        let date = date_ms("2027-04-14");
        assert_eq!(mini.lifecycle(date - 1), "Deprecating");
        assert_eq!(mini.lifecycle(date), "Deprecated");
    }

    #[test]
    fn upgrades_follow_the_option_and_never_go_back() {
        let mut arm = ArmState::default();
        arm.catalog_additions.push(json!({
            "format": "OpenAI", "name": "gpt-5-mini", "version": "2026-11-01",
            "lifecycleStatus": "GenerallyAvailable", "isDefaultVersion": true,
            "inference": "2028-05-01", "skus": [{ "name": "GlobalStandard" }]
        }));
        let all = entries(&arm);
        let old = ("OpenAI", "gpt-5-mini", "2025-08-07");
        let before = date_ms("2027-02-09") - DAY_MS;
        let after = date_ms("2027-02-09");
        let to = |o, t| upgrade_target(&all, old, o, t).map(|e| e.version.as_str());
        assert_eq!(to(DEFAULT_UPGRADE, before), Some("2026-11-01"));
        assert_eq!(to(ON_EXPIRY, before), None);
        assert_eq!(to(ON_EXPIRY, after), Some("2026-11-01"));
        assert_eq!(to("NoAutoUpgrade", after), None);
        let newest = ("OpenAI", "gpt-5-mini", "2026-11-01");
        assert!(upgrade_target(&all, newest, DEFAULT_UPGRADE, after).is_none());
    }
}
