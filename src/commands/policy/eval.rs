//! `provision policy eval --policy FILE …`: one request against a policy file, answered with one
//! JSON object (the command's stable interface).

use std::path::Path;

use crate::cli::{CloudArg, PolicyEvalArgs};
use crate::clock::{Clock as _, SystemClock};
use crate::cloud::Cloud;
use crate::commands::ExitStatus;
use crate::input;
use crate::output::Printer;
use crate::output::events::Evaluation;
use crate::policy::Document;
use crate::policy::simulator::{Request, Simulator};

pub fn run(args: PolicyEvalArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let (doc, model) = input::load_policy(&args.policy)?;
    // No token at all is a request like any other: the policy decides what it gets.
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(f)) => Some(input::read_token_file(f)?),
        (None, None) => None,
    };
    let now = match &args.now {
        Some(text) => crate::clock::parse_instant(text)
            .map_err(|e| anyhow::anyhow!("--now: {e}"))?
            .as_second(),
        None => SystemClock.now_seconds(),
    };
    let mut simulator = simulator(&args, &doc)?;
    let request = request(&args, token)?;
    let o = simulator.evaluate(&model, &request, now);
    printer.json_object(&Evaluation {
        decision: o.decision,
        status: o.status,
        reason: o.reason,
        message: o.message,
        policy: o.policy,
        detail: o.detail,
        effects: o.effects,
        not_simulated: o.not_simulated,
    });
    Ok(ExitStatus::Success)
}

/// `--cloud`, else the cloud (or sandbox) the policy's token check signs in to, else public.
fn simulator(args: &PolicyEvalArgs, doc: &Document) -> anyhow::Result<Simulator> {
    let check = doc
        .root
        .descendants()
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e.name == "validate-azure-ad-token");
    let (cloud, address) = match (
        args.cloud,
        check.and_then(|c| c.attr("authentication-endpoint")),
    ) {
        (Some(CloudArg::Public), _) => (Cloud::Public, String::new()),
        (Some(CloudArg::Usgov), _) => (Cloud::Usgov, String::new()),
        (Some(CloudArg::China), _) => (Cloud::China, String::new()),
        (None, Some(endpoint)) => {
            Cloud::from_authority(endpoint).unwrap_or((Cloud::Public, String::new()))
        }
        (None, None) => (Cloud::Public, String::new()),
    };
    let mut simulator = Simulator::new(cloud);
    if let Some(jwks) = &args.jwks {
        simulator = simulator.with_default_keys(input::read_jwks(jwks)?);
    }
    if !address.is_empty() {
        simulator.sandbox_address = address;
    }
    for pair in &args.tenant_jwks {
        let (tenant, file) = split_pair(pair, '=', "TENANT=FILE")?;
        simulator = simulator.with_tenant_keys(tenant, input::read_jwks(Path::new(file))?);
    }
    for pair in &args.named_values {
        let (name, value) = split_pair(pair, '=', "NAME=VALUE")?;
        simulator
            .named_values
            .insert(name.to_owned(), value.to_owned());
    }
    Ok(simulator)
}

fn request(args: &PolicyEvalArgs, token: Option<String>) -> anyhow::Result<Request> {
    let mut request = Request::new(&args.method, &args.path);
    for header in &args.headers {
        let (name, value) = split_pair(header, ':', "'Name: value'")?;
        request.headers.push((name.to_owned(), value.to_owned()));
    }
    if let Some(token) = token
        && request.header("Authorization").is_none()
    {
        request
            .headers
            .push(("Authorization".to_owned(), format!("Bearer {token}")));
    }
    for pair in &args.query {
        let (name, value) = split_pair(pair, '=', "NAME=VALUE")?;
        request.query.push((name.to_owned(), value.to_owned()));
    }
    Ok(request)
}

fn split_pair<'a>(
    text: &'a str,
    separator: char,
    what: &str,
) -> anyhow::Result<(&'a str, &'a str)> {
    text.split_once(separator)
        .map(|(a, b)| (a.trim(), b.trim()))
        .filter(|(a, _)| !a.is_empty())
        .ok_or_else(|| anyhow::anyhow!("`{text}` is not {what}"))
}
