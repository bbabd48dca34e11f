//! The `foundry:` section of an environment: the Foundry (Cognitive Services) account and its
//! model deployments, checked as Azure would check them at `up` (names, subdomain, capacities),
//! so that a mistake is reported with its file position before anything is sent.

use std::collections::BTreeSet;

use serde::Serialize;

use super::checker::Checker;
use super::limits;
use super::model::RawFoundry;
use super::naming;
use super::tree::{self, KeyPath};

#[derive(Debug, Clone, Serialize)]
pub struct Foundry {
    /// Account name, also its custom subdomain.
    pub account: String,
    pub kind: String,
    pub sku: String,
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub name: String,
    pub model: Model,
    pub sku: DeploymentSku,
    pub upgrade: super::Upgrade,
}

#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub name: String,
    /// `None`: the location's default version, resolved from the model catalog at plan time.
    pub version: Option<String>,
    pub format: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSku {
    pub name: String,
    /// Thousands of tokens per minute for Standard/GlobalStandard.
    pub capacity: u32,
}

pub(super) fn build(c: &mut Checker<'_>, raw: Option<RawFoundry>) -> Option<Foundry> {
    let path = KeyPath::default().key("foundry");
    let raw = c.required(raw, &path)?;
    let account = c.required(raw.account, &path.key("account"));
    if let Some(account) = &account {
        let _ = c.rule(
            &path.key("account"),
            naming::cognitive_name("Cognitive Services account name", account),
        ) && c.rule(&path.key("account"), naming::custom_subdomain(account));
    }
    let deployments_path = path.key("deployments");
    let mut raw_deployments = c
        .required(raw.deployments, &deployments_path)
        .unwrap_or_default();
    let n = raw_deployments.len();
    if !limits::count(c, &deployments_path, "deployments", n, limits::DEPLOYMENTS) {
        raw_deployments.clear();
    }
    for (key, value) in [("kind", &raw.kind), ("sku", &raw.sku)] {
        if let Some(value) = value {
            limits::length(c, &path.key(key), &format!("`{key}`"), value, limits::TEXT);
        }
    }
    if raw_deployments.is_empty() && tree::get(c.root, &deployments_path).is_some() {
        c.error(
            &deployments_path,
            "at least one model deployment is required",
        );
    }
    let mut deployments = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, d) in raw_deployments.into_iter().enumerate() {
        let here = deployments_path.index(i);
        let name = c.required(d.name, &here.key("name"));
        if let Some(name) = &name
            && c.rule(
                &here.key("name"),
                naming::cognitive_name("deployment name", name),
            )
            && !seen.insert(name.clone())
        {
            c.error(
                &here.key("name"),
                format!("deployment `{name}` is declared twice"),
            );
        }
        let model = c.required(d.model, &here.key("model")).and_then(|m| {
            for (key, value) in [
                ("name", &m.name),
                ("version", &m.version),
                ("format", &m.format),
            ] {
                if let Some(value) = value {
                    let at = here.key("model").key(key);
                    limits::length(c, &at, &format!("the model {key}"), value, limits::TEXT);
                }
            }
            let name = c.required(m.name, &here.key("model").key("name"))?;
            Some(Model {
                name,
                version: m.version.filter(|v| v != "default"),
                format: m.format.unwrap_or_else(|| "OpenAI".to_owned()),
            })
        });
        let sku = c.required(d.sku, &here.key("sku")).and_then(|s| {
            let name = c.required(s.name, &here.key("sku").key("name"));
            if let Some(n) = &name {
                let at = here.key("sku").key("name");
                limits::length(c, &at, "the SKU name", n, limits::TEXT);
            }
            let capacity_path = here.key("sku").key("capacity");
            let capacity =
                c.required(s.capacity, &capacity_path)
                    .and_then(|n| match u32::try_from(n) {
                        Ok(n) if n > 0 => Some(n),
                        _ => {
                            c.error(&capacity_path, "expected a positive integer");
                            None
                        }
                    });
            Some(DeploymentSku {
                name: name?,
                capacity: capacity?,
            })
        });
        if let (Some(name), Some(model), Some(sku)) = (name, model, sku) {
            deployments.push(Deployment {
                name,
                model,
                sku,
                upgrade: d.upgrade.unwrap_or_default(),
            });
        }
    }
    Some(Foundry {
        account: account?,
        kind: raw.kind.unwrap_or_else(|| "AIServices".to_owned()),
        sku: raw.sku.unwrap_or_else(|| "S0".to_owned()),
        deployments,
    })
}
