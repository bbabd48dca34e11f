//! `provision models --env <name>`: what the environment's location offers before anything is
//! written to it, so a version is chosen from the catalog Azure publishes rather than from a
//! blog post: version, default or not, lifecycle, retirement date, SKUs with default and maximum
//! capacity, and the quota left. A table for people, JSON lines for pipelines.

use super::{ExitStatus, load_target, runtime};
use crate::cli::{GlobalArgs, ModelsArgs};
use crate::config::Blueprint;
use crate::engine::{self, Offer};
use crate::output::Printer;
use crate::output::events::{JsonLine, ModelSku};
use crate::resources::models::CatalogModel;
use crate::{embedded, hint::Hinted};

pub fn run(global: &GlobalArgs, args: ModelsArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let credential = engine::credential_plan(args.azure.auth, &blueprint)?;
    let timeout = args.azure.timeout;
    let offer = runtime()?.block_on(async {
        let _sandbox = embedded::sandbox_for(&blueprint, printer, timeout).await?;
        engine::offer(&blueprint, &credential, timeout).await
    })?;
    if offer.catalog.models.is_empty() {
        return Err(Hinted::error(
            format!(
                "{} lists no models in {}",
                blueprint.env, blueprint.location
            ),
            "check `location` in the environment file: Azure OpenAI models are offered in some \
             regions only",
        ));
    }
    if printer.json() {
        for m in &offer.catalog.models {
            printer.emit(&line(&blueprint, m, &offer));
        }
    } else {
        printer.out(&table(&blueprint, &offer));
    }
    Ok(ExitStatus::Success)
}

fn skus(m: &CatalogModel, offer: &Offer) -> Vec<ModelSku> {
    m.skus
        .iter()
        .map(|s| {
            let usage = s
                .usage_name
                .clone()
                .unwrap_or_else(|| format!("OpenAI.{}.{}", s.name, m.name));
            let left = offer
                .quota
                .as_ref()
                .and_then(|q| q.get(&usage))
                .map(|(used, limit)| limit.saturating_sub(*used));
            ModelSku {
                name: s.name.clone(),
                default_capacity: s.default_capacity,
                max_capacity: s.max_capacity,
                quota_left: left,
            }
        })
        .collect()
}

fn line(blueprint: &Blueprint, m: &CatalogModel, offer: &Offer) -> JsonLine {
    JsonLine::Model {
        env: blueprint.env.clone(),
        location: blueprint.location.clone(),
        format: m.format.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        default: m.is_default,
        lifecycle: m.lifecycle.clone(),
        retires: m.retirement_date(),
        skus: skus(m, offer),
    }
}

fn table(blueprint: &Blueprint, offer: &Offer) -> String {
    let dash = || "-".to_owned();
    let number = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
    let mut rows = vec![[
        "model".to_owned(),
        "version".to_owned(),
        "default".to_owned(),
        "lifecycle".to_owned(),
        "retires".to_owned(),
        "skus (default/max capacity, quota left)".to_owned(),
    ]];
    for m in &offer.catalog.models {
        let skus: Vec<String> = skus(m, offer)
            .iter()
            .map(|s| {
                let left = s
                    .quota_left
                    .map(|l| format!(", {l} left"))
                    .unwrap_or_default();
                format!(
                    "{} {}/{}{left}",
                    s.name,
                    number(s.default_capacity),
                    number(s.max_capacity)
                )
            })
            .collect();
        rows.push([
            m.name.clone(),
            m.version.clone(),
            if m.is_default { "yes" } else { "no" }.to_owned(),
            m.lifecycle.clone(),
            m.retirement_date().unwrap_or_else(dash),
            skus.join("; "),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "models offered in {} ({})\n",
        blueprint.location, blueprint.env
    );
    for row in rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out.pop();
    out
}
