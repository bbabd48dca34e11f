//! The model catalog of a location, as Azure's Models API lists it, and what it says about each
//! deployment of an environment: the version a deployment that names none gets, a version that is
//! retired (an error, before any write), one that retires soon (a warning), names and versions
//! the location does not offer (errors naming what it does). Pure: the engine reads the catalog
//! and the clock and passes them in.
//!
//! Facts: docs/reference/dataplane.md §4 (lifecycle words, the Models API shape, the 410 at retirement).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::Finding;
use crate::config::Blueprint;

/// A version retiring within this many days is a warning.
pub const WARN_DAYS: i64 = 60;
/// The API's `lifecycleStatus` of a retired version (the docs' "Retired").
const RETIRED: &str = "Deprecated";
/// The docs' "Deprecated": existing customers only.
const DEPRECATING: &str = "Deprecating";

/// One SKU a model version is offered in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogSku {
    pub name: String,
    pub default_capacity: Option<u64>,
    pub max_capacity: Option<u64>,
    pub usage_name: Option<String>,
    /// `deprecationDate`: when this deployment type of the version stops.
    pub retires: Option<String>,
}

/// One model version a location offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogModel {
    pub format: String,
    pub name: String,
    pub version: String,
    pub is_default: bool,
    pub lifecycle: String,
    /// `deprecation.inference`: when inference stops, as Azure wrote it.
    pub retires: Option<String>,
    pub replacement: Option<String>,
    pub skus: Vec<CatalogSku>,
}

impl CatalogModel {
    fn retires_at(&self) -> Option<Timestamp> {
        self.retires.as_deref()?.parse().ok()
    }

    /// Retired: the API says so, or its inference date has passed.
    pub fn retired(&self, now: Timestamp) -> bool {
        self.lifecycle == RETIRED || self.retires_at().is_some_and(|at| at <= now)
    }

    /// The retirement date, `YYYY-MM-DD`.
    pub fn retirement_date(&self) -> Option<String> {
        self.retires_at()
            .map(|t| t.strftime("%Y-%m-%d").to_string())
    }

    fn is(&self, format: &str, name: &str) -> bool {
        self.format.eq_ignore_ascii_case(format) && self.name.eq_ignore_ascii_case(name)
    }
}

/// A location's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub models: Vec<CatalogModel>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Catalog {
    /// The answer of `…/locations/{l}/models` (each model wrapped with its account kind, listed
    /// once per kind) or of `…/accounts/{a}/models` (bare): each version once, in Azure's order.
    pub fn parse(body: &Value) -> Catalog {
        let mut models: Vec<CatalogModel> = Vec::new();
        let items = body.get("value").and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            let m = item.get("model").unwrap_or(item);
            let (Some(format), Some(name), Some(version)) =
                (text(m, "format"), text(m, "name"), text(m, "version"))
            else {
                continue;
            };
            if models
                .iter()
                .any(|o| o.is(&format, &name) && o.version == version)
            {
                continue;
            }
            let skus = m.get("skus").and_then(Value::as_array);
            let capacity = |s: &Value, k: &str| s.pointer(&format!("/capacity/{k}"))?.as_u64();
            models.push(CatalogModel {
                is_default: m.get("isDefaultVersion").and_then(Value::as_bool) == Some(true),
                lifecycle: text(m, "lifecycleStatus").unwrap_or_default(),
                retires: m
                    .pointer("/deprecation/inference")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                replacement: m
                    .pointer("/replacementConfig/targetModelName")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                skus: skus
                    .into_iter()
                    .flatten()
                    .filter_map(|s| {
                        Some(CatalogSku {
                            name: text(s, "name")?,
                            default_capacity: capacity(s, "default"),
                            max_capacity: capacity(s, "maximum"),
                            usage_name: text(s, "usageName"),
                            retires: text(s, "deprecationDate"),
                        })
                    })
                    .collect(),
                format,
                name,
                version,
            });
        }
        Catalog { models }
    }

    pub fn versions(&self, format: &str, name: &str) -> Vec<&CatalogModel> {
        self.models.iter().filter(|m| m.is(format, name)).collect()
    }

    pub fn find(&self, format: &str, name: &str, version: &str) -> Option<&CatalogModel> {
        self.models
            .iter()
            .find(|m| m.is(format, name) && m.version == version)
    }

    pub fn default_of(&self, format: &str, name: &str) -> Option<&CatalogModel> {
        self.models
            .iter()
            .find(|m| m.is(format, name) && m.is_default)
    }
}

/// Quota by usage name (`OpenAI.GlobalStandard.gpt-5.6-luna`): what is used and the limit, in
/// the usage's unit (capacity units of 1,000 tokens per minute for OpenAI models).
pub type Quota = BTreeMap<String, (u64, u64)>;

/// The answer of `…/locations/{l}/usages` (dataplane.md §4.5).
pub fn parse_usages(body: &Value) -> Quota {
    let items = body.get("value").and_then(Value::as_array);
    items
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let name = u.pointer("/name/value")?.as_str()?.to_owned();
            let number = |k: &str| u.get(k)?.as_f64().map(|n| n.max(0.0) as u64);
            Some((name, (number("currentValue")?, number("limit")?)))
        })
        .collect()
}

/// What the catalog says about one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFacts {
    /// The version the deployment asks for: its own, or the location's default.
    pub version: Option<String>,
    /// Every version of the model the location lists, and whether it is retired now.
    pub retired: BTreeMap<String, bool>,
    /// Why the deployment can not be planned: message and hint.
    pub error: Option<(String, String)>,
    pub warnings: Vec<Finding>,
    /// Said only of a deployment still to be created: the version is closed to new customers.
    pub closed: Option<Finding>,
}

/// The facts of every deployment of `blueprint`, by deployment name.
pub fn judge(
    blueprint: &Blueprint,
    catalog: &Catalog,
    now: Timestamp,
) -> BTreeMap<String, ModelFacts> {
    blueprint
        .foundry
        .deployments
        .iter()
        .map(|d| {
            let facts = judge_one(
                &blueprint.location,
                &d.model.format,
                &d.model.name,
                d.model.version.as_deref(),
                &d.sku.name,
                catalog,
                now,
            );
            (d.name.clone(), facts)
        })
        .collect()
}

fn models_hint() -> String {
    "run `provision models --env <env>` to see what the location offers".to_owned()
}

fn judge_one(
    location: &str,
    format: &str,
    name: &str,
    version: Option<&str>,
    sku: &str,
    catalog: &Catalog,
    now: Timestamp,
) -> ModelFacts {
    let versions = catalog.versions(format, name);
    let mut facts = ModelFacts {
        retired: versions
            .iter()
            .map(|m| (m.version.clone(), m.retired(now)))
            .collect(),
        ..ModelFacts::default()
    };
    if versions.is_empty() {
        facts.error = Some((
            format!("model {name} ({format}) is not offered in {location}"),
            models_hint(),
        ));
        return facts;
    }
    let default = catalog.default_of(format, name);
    let entry = match version {
        Some(v) => catalog.find(format, name, v),
        None => default,
    };
    let Some(entry) = entry else {
        let listed: Vec<&str> = versions.iter().map(|m| m.version.as_str()).collect();
        facts.error = Some(match version {
            Some(v) => (
                format!(
                    "model {name} version {v} is not offered in {location}; it offers {}",
                    listed.join(", ")
                ),
                "set `model.version` to one of those, or to `default`".to_owned(),
            ),
            None => (
                format!("model {name} has no default version in {location}"),
                format!("set `model.version` to one of {}", listed.join(", ")),
            ),
        });
        return facts;
    };
    facts.version = Some(entry.version.clone());
    let date = entry
        .retirement_date()
        .unwrap_or_else(|| "an unknown date".to_owned());
    if entry.retired(now) {
        facts.error = Some((
            format!(
                "model {name} version {} retired on {date} in {location}: Azure refuses new \
                 deployments of it and its inference answers 410",
                entry.version
            ),
            replacement_hint(catalog, entry, default, now),
        ));
        return facts;
    }
    let offered = entry.skus.iter().find(|s| s.name.eq_ignore_ascii_case(sku));
    let sku_retires = offered
        .and_then(|s| s.retires.as_deref())
        .and_then(|d| d.parse::<Timestamp>().ok());
    if let Some(at) = sku_retires.filter(|at| *at <= now) {
        facts.error = Some((
            format!(
                "model {name} version {} retired as {sku} on {} in {location}: Azure refuses new \
                 deployments of it",
                entry.version,
                at.strftime("%Y-%m-%d")
            ),
            format!(
                "deploy it as another SKU the version is offered in (`provision models --env \
                 <env>`), or {}",
                replacement_hint(catalog, entry, default, now)
            ),
        ));
        return facts;
    }
    if !entry.skus.is_empty() && offered.is_none() {
        let offered: Vec<&str> = entry.skus.iter().map(|s| s.name.as_str()).collect();
        facts.error = Some((
            format!(
                "model {name} version {} is not offered as {sku} in {location}; it is offered \
                 as {}",
                entry.version,
                offered.join(", ")
            ),
            "set `sku.name` to one of those".to_owned(),
        ));
        return facts;
    }
    // The earlier of the version's date and its SKU's.
    let ends = match (entry.retires_at(), sku_retires) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let soon =
        ends.is_some_and(|at| at.duration_since(now) <= SignedDuration::from_hours(24 * WARN_DAYS));
    if let (true, Some(ends)) = (soon, ends) {
        let date = ends.strftime("%Y-%m-%d");
        facts.warnings.push(Finding {
            rule: "model-retiring",
            message: format!(
                "model {name} version {} retires on {date}; {}",
                entry.version,
                replacement_hint(catalog, entry, default, now)
            ),
        });
    }
    // "Deprecated" in the docs: only subscriptions that have deployed the version may create
    // deployments of it (dataplane.md §4.1); which ones have is not readable, so a warning.
    if entry.lifecycle == DEPRECATING {
        facts.closed = Some(Finding {
            rule: "model-closed",
            message: format!(
                "model {name} version {} is closed to new customers (Deprecating): Azure creates \
                 it only in subscriptions that have deployed it before, and answers \
                 ServiceModelDeprecating elsewhere; {}",
                entry.version,
                replacement_hint(catalog, entry, default, now)
            ),
        });
    }
    facts
}

/// The location's default version when it is another, served one; else the replacement model
/// the catalog names.
fn replacement_hint(
    catalog: &Catalog,
    entry: &CatalogModel,
    default: Option<&CatalogModel>,
    now: Timestamp,
) -> String {
    if let Some(d) = default.filter(|d| d.version != entry.version && !d.retired(now)) {
        return format!(
            "the replacement is the default version {}: set `model.version: \"{}\"` (or \
             `default`)",
            d.version, d.version
        );
    }
    if let Some(target) = &entry.replacement {
        let version = catalog
            .default_of(&entry.format, target)
            .map(|d| format!(" version {}", d.version))
            .unwrap_or_default();
        return format!("the replacement is model {target}{version}");
    }
    models_hint()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalog() -> Catalog {
        let model = |version: &str, default: bool, status: &str, retires: &str| {
            json!({ "kind": "OpenAI", "model": {
                "format": "OpenAI", "name": "chat", "version": version,
                "isDefaultVersion": default, "lifecycleStatus": status,
                "deprecation": { "inference": retires },
                "skus": [{ "name": "GlobalStandard", "capacity": { "default": 10, "maximum": 50 } }]
            }})
        };
        Catalog::parse(&json!({ "value": [
            model("1", false, "Deprecated", "2026-10-01T00:00:00Z"),
            model("2", false, "GenerallyAvailable", "2027-01-01T00:00:00Z"),
            model("3", true, "GenerallyAvailable", "2028-01-01T00:00:00Z"),
            model("3", true, "GenerallyAvailable", "2028-01-01T00:00:00Z"),
        ]}))
    }

    fn now() -> Timestamp {
        "2026-12-03T00:00:00Z".parse().unwrap()
    }

    fn judged(version: Option<&str>, sku: &str) -> ModelFacts {
        judge_one(
            "swedencentral",
            "OpenAI",
            "chat",
            version,
            sku,
            &catalog(),
            now(),
        )
    }

    #[test]
    fn versions_are_listed_once_whatever_the_kinds() {
        assert_eq!(catalog().models.len(), 3);
        assert_eq!(catalog().models[2].skus[0].max_capacity, Some(50));
    }

    #[test]
    fn a_retired_version_is_an_error_naming_its_date_and_the_default() {
        let (message, hint) = judged(Some("1"), "GlobalStandard").error.unwrap();
        assert_eq!(
            message,
            "model chat version 1 retired on 2026-10-01 in swedencentral: Azure refuses new \
             deployments of it and its inference answers 410"
        );
        assert_eq!(
            hint,
            "the replacement is the default version 3: set `model.version: \"3\"` (or `default`)"
        );
    }

    #[test]
    fn a_version_retiring_within_60_days_is_a_warning_and_later_nothing() {
        let soon = judged(Some("2"), "GlobalStandard");
        assert_eq!(soon.error, None);
        assert_eq!(soon.warnings.len(), 1);
        assert!(
            soon.warnings[0]
                .message
                .starts_with("model chat version 2 retires on 2027-01-01;")
        );
        let fine = judged(Some("3"), "GlobalStandard");
        assert_eq!((fine.error, fine.warnings.len()), (None, 0));
    }

    #[test]
    fn a_sku_retired_before_its_version_is_an_error_and_soon_a_warning() {
        let mut c = catalog();
        c.models[2].skus[0].retires = Some("2026-11-01T00:00:00Z".to_owned());
        let judged =
            |c: &Catalog| judge_one("x", "OpenAI", "chat", Some("3"), "GlobalStandard", c, now());
        let (message, _) = judged(&c).error.unwrap();
        assert_eq!(
            message,
            "model chat version 3 retired as GlobalStandard on 2026-11-01 in x: Azure refuses new \
             deployments of it"
        );
        c.models[2].skus[0].retires = Some("2027-01-15T00:00:00Z".to_owned());
        let soon = judged(&c);
        assert_eq!(soon.error, None);
        assert!(
            soon.warnings[0]
                .message
                .starts_with("model chat version 3 retires on 2027-01-15;")
        );
        c.models[2].skus[0].retires = Some("2028-01-01T00:00:00Z".to_owned());
        assert_eq!(judged(&c).warnings, Vec::new());
    }

    #[test]
    fn a_deprecating_version_is_said_to_be_closed_and_a_ga_one_is_not() {
        let mut c = catalog();
        c.models[1].lifecycle = "Deprecating".to_owned();
        c.models[1].retires = Some("2028-01-01T00:00:00Z".to_owned());
        let closed = judge_one(
            "x",
            "OpenAI",
            "chat",
            Some("2"),
            "GlobalStandard",
            &c,
            now(),
        );
        assert_eq!(closed.error, None);
        assert_eq!(
            closed.closed.unwrap().message,
            "model chat version 2 is closed to new customers (Deprecating): Azure creates it only \
             in subscriptions that have deployed it before, and answers ServiceModelDeprecating \
             elsewhere; the replacement is the default version 3: set `model.version: \"3\"` (or \
             `default`)"
        );
        assert_eq!(judged(Some("3"), "GlobalStandard").closed, None);
    }

    #[test]
    fn no_version_is_the_default_and_unknown_ones_list_what_exists() {
        assert_eq!(judged(None, "GlobalStandard").version.as_deref(), Some("3"));
        let (message, _) = judged(Some("9"), "GlobalStandard").error.unwrap();
        assert_eq!(
            message,
            "model chat version 9 is not offered in swedencentral; it offers 1, 2, 3"
        );
        let (message, _) = judged(Some("3"), "Standard").error.unwrap();
        assert!(message.contains("not offered as Standard"), "{message}");
        let none = judge_one("westus", "OpenAI", "other", None, "x", &catalog(), now());
        assert_eq!(
            none.error.unwrap().0,
            "model other (OpenAI) is not offered in westus"
        );
    }
}
