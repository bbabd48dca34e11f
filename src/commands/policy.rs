//! `provision policy test|eval|diff`: the policy engine from the command line.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{ExitStatus, load_target, load_templates};
use crate::cli::{
    CloudArg, GlobalArgs, PolicyArgs, PolicyCommand, PolicyDiffArgs, PolicyEvalArgs, PolicyTestArgs,
};
use crate::clock::Clock as _;
use crate::cloud::Cloud;
use crate::config::{Blueprint, Guid};
use crate::hint::{Hinted, Remedy};
use crate::output::{ERROR, GOOD, Printer};
use crate::policy::matrix::{self, Case, TokenWorld};
use crate::policy::model::PolicyDocument;
use crate::policy::simulator::{Outcome, Simulator};
use crate::policy::token::{Jwks, KeySet, MAX_JWKS_BYTES, TokenSigner};
use crate::policy::{Change, Document, MAX_POLICY_BYTES, ParseError, cases, check_size};
use crate::render::{self, ResolvedAppIds};

pub fn run(global: &GlobalArgs, args: PolicyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    match args.command {
        PolicyCommand::Test(a) => test(global, a, printer),
        PolicyCommand::Eval(a) => eval(a, printer),
        PolicyCommand::Diff(a) => diff(a, printer),
    }
}

/// A policy file parsed into the model, with file:line:col on every error.
fn load_policy(path: &Path) -> anyhow::Result<(Document, PolicyDocument)> {
    let text = read_policy(path)?;
    parse_policy(&path.display().to_string(), &text)
}

/// Reads at most one byte more than `limit` (from stdin for `-`): enough to know that an input
/// is over its limit without reading a huge one whole.
fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let cannot = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {e}", path.display());
    let mut bytes = Vec::new();
    let take = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(take)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(take).read_to_end(&mut bytes))
            .map_err(cannot)?;
    }
    Ok(bytes)
}

/// The bytes as text, or an error at the first byte that is not UTF-8.
fn utf8(name: &str, bytes: Vec<u8>, hint: &str) -> anyhow::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Hinted::error(format!("{name}:{line}:{column}: not UTF-8 text"), hint)
    })
}

/// A policy file's text, refused promptly when it is over APIM's size limit.
fn read_policy(path: &Path) -> anyhow::Result<String> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, MAX_POLICY_BYTES)?;
    check_size(&bytes).map_err(|e| xml_error(&name, &e))?;
    utf8(&name, bytes, "save the policy as UTF-8")
}

fn xml_error(name: &str, e: &ParseError) -> anyhow::Error {
    let hint = e.hint().map(Cow::into_owned).unwrap_or_default();
    Hinted::error(format!("{name}:{}: {}", e.position, e.describe()), hint)
}

fn parse_policy(name: &str, text: &str) -> anyhow::Result<(Document, PolicyDocument)> {
    let doc = Document::parse(text).map_err(|e| xml_error(name, &e))?;
    let model = PolicyDocument::from_document(&doc).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{name}:{e}")).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    Ok((doc, model))
}

/// A stable stand-in app id for an app that does not exist yet, so offline tests are repeatable.
fn test_app_id(unique_name: &str) -> Guid {
    let h = Sha256::digest(format!("provision policy test: {unique_name}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    );
    Guid::parse(&text).expect("well-formed by construction")
}

fn now() -> i64 {
    crate::clock::SystemClock.now_seconds()
}

/// The tenant a foreign-tenant token comes from in tests.
const FOREIGN_TENANT: &str = "f0f0f0f0-0000-4000-8000-00000000f0f0";

fn test(
    global: &GlobalArgs,
    args: PolicyTestArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let blueprint = load_target(&global.env_dir, &args.env)?;
    let ids = ResolvedAppIds::pinned(&blueprint).unwrap_or_else(|| ResolvedAppIds {
        api: blueprint
            .entra
            .api
            .app_id
            .clone()
            .unwrap_or_else(|| test_app_id(&blueprint.entra.api.unique_name)),
        clients: blueprint
            .entra
            .clients
            .iter()
            .map(|c| {
                c.app_id
                    .clone()
                    .unwrap_or_else(|| test_app_id(&c.unique_name))
            })
            .collect(),
    });
    let templates = load_templates(&global.templates_dir, &blueprint)?;
    let policy = render::render(&blueprint, &templates, &ids)?;
    let (_, model) = parse_policy(
        &format!("{} (rendered)", render::output_file(&blueprint)),
        policy.xml(),
    )?;

    let mut rng = getrandom::SysRng;
    let own = TokenSigner::generate(&mut rng, "provision-test-key").map_err(anyhow::Error::msg)?;
    let foreign =
        TokenSigner::generate(&mut rng, "provision-foreign-key").map_err(anyhow::Error::msg)?;
    let keys = |s: &TokenSigner| {
        KeySet::from_jwks(Jwks {
            keys: vec![s.jwk()],
        })
        .map_err(anyhow::Error::msg)
    };
    let (own_keys, foreign_keys) = (keys(&own)?, keys(&foreign)?);
    let now = now();
    let api_app_id = ids.api.to_string();
    let world = TokenWorld {
        cloud: blueprint.cloud,
        sandbox_address: &blueprint.sandbox_address,
        tenant: blueprint.tenant_id.as_str(),
        foreign_tenant: FOREIGN_TENANT,
        own: &own,
        foreign: &foreign,
        api_app_id: &api_app_id,
        now,
    };
    let clients: Vec<(String, String)> = blueprint
        .entra
        .clients
        .iter()
        .zip(&ids.clients)
        .map(|(c, id)| (c.unique_name.clone(), id.to_string()))
        .collect();

    let mut suites: Vec<(String, Vec<Case>)> = vec![(
        "matrix".to_owned(),
        matrix::builtin(&world, &model, &blueprint.api.path, &clients),
    )];
    for file in &args.cases {
        let text = crate::config::read_yaml_file(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        suites.push((
            file.display().to_string(),
            cases::parse(
                &file.display().to_string(),
                &text,
                &world,
                &blueprint.api.path,
                &clients,
            )
            .map_err(anyhow::Error::msg)?,
        ));
    }

    let simulator = || {
        let mut s = Simulator::new(blueprint.cloud)
            .with_tenant_keys(blueprint.tenant_id.as_str(), own_keys.clone())
            .with_tenant_keys(FOREIGN_TENANT, foreign_keys.clone());
        s.sandbox_address = blueprint.sandbox_address.clone();
        s.named_values = blueprint.apim.named_values.clone();
        s
    };
    let (mut passed, mut failed) = (0, 0);
    for (source, cases) in &suites {
        for case in cases {
            let mut request = case.request.clone();
            request.llm_tokens = case.llm_tokens;
            // Each case starts from fresh counters: cases are independent of their order.
            let outcome = simulator().evaluate(&model, &request, now);
            let ok = matches(case, &outcome);
            if ok {
                passed += 1
            } else {
                failed += 1
            }
            report_case(printer, &blueprint, source, case, &outcome, ok);
        }
    }
    if printer.json() {
        printer.emit(
            &json!({ "type": "summary", "env": blueprint.env, "passed": passed, "failed": failed }),
        );
    } else {
        printer.out(&format!("{passed} passed, {failed} failed"));
    }
    Ok(if failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn matches(case: &Case, outcome: &Outcome) -> bool {
    case.expect.decision.is_none_or(|d| d == outcome.decision)
        && case.expect.status.is_none_or(|s| s == outcome.status)
        && case
            .expect
            .reason
            .as_ref()
            .is_none_or(|r| Some(r) == outcome.reason.as_ref())
}

fn report_case(
    printer: &Printer,
    blueprint: &Blueprint,
    source: &str,
    case: &Case,
    outcome: &Outcome,
    ok: bool,
) {
    let actual = format!(
        "{} {}{}",
        outcome.status,
        serde_json::to_value(outcome.decision)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        outcome
            .reason
            .as_ref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default()
    );
    if printer.json() {
        printer.emit(&json!({
            "type": "case", "env": blueprint.env, "source": source, "name": case.name, "passed": ok,
            "expected": case.expect,
            "actual": { "decision": outcome.decision, "status": outcome.status, "reason": outcome.reason, "detail": outcome.detail },
        }));
        return;
    }
    if ok {
        printer.out(&format!(
            "{}  {:<52} {actual}",
            printer.paint(GOOD, "PASS"),
            case.name
        ));
    } else {
        let expected = format!(
            "{}{}{}",
            case.expect
                .status
                .map(|s| format!("{s} "))
                .unwrap_or_default(),
            case.expect
                .decision
                .and_then(|d| serde_json::to_value(d).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            case.expect
                .reason
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        );
        printer.out(&format!(
            "{}  {:<52} expected {expected}, got {actual}",
            printer.paint(ERROR, "FAIL"),
            case.name
        ));
        if let Some(detail) = &outcome.detail {
            printer.out(&format!("      {detail} ({source})"));
        }
    }
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

fn read_jwks(path: &Path) -> anyhow::Result<KeySet> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, MAX_JWKS_BYTES)?;
    let text = utf8(&name, bytes, "a JWKS document is JSON, which is UTF-8")?;
    KeySet::from_json(&text).map_err(|e| anyhow::anyhow!("{name}:{e}"))
}

/// More than any token file needs: a token over [`crate::policy::token::MAX_TOKEN_BYTES`] is
/// still read, to be refused by the policy as malformed, with room for surrounding whitespace.
const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let name = if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read_bounded(path, MAX_TOKEN_FILE_BYTES)?;
    if bytes.len() > MAX_TOKEN_FILE_BYTES {
        return Err(Hinted::error(
            format!("{name}: larger than {MAX_TOKEN_FILE_BYTES} bytes, which no token is"),
            "pass the file that holds just the token (Entra tokens are a few KB)",
        ));
    }
    Ok(utf8(&name, bytes, "a token is ASCII text")?
        .trim()
        .to_owned())
}

fn eval(args: PolicyEvalArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let (doc, model) = load_policy(&args.policy)?;
    // No token at all is a request like any other: the policy decides what it gets.
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(f)) => Some(read_token_file(f)?),
        (None, None) => None,
    };
    let now = match &args.now {
        Some(text) => crate::clock::parse_instant(text)
            .map_err(|e| anyhow::anyhow!("--now: {e}"))?
            .as_second(),
        None => now(),
    };
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
        simulator = simulator.with_default_keys(read_jwks(jwks)?);
    }
    if !address.is_empty() {
        simulator.sandbox_address = address;
    }
    for pair in &args.tenant_jwks {
        let (tenant, file) = split_pair(pair, '=', "TENANT=FILE")?;
        simulator = simulator.with_tenant_keys(tenant, read_jwks(Path::new(file))?);
    }
    for pair in &args.named_values {
        let (name, value) = split_pair(pair, '=', "NAME=VALUE")?;
        simulator
            .named_values
            .insert(name.to_owned(), value.to_owned());
    }
    let mut request = crate::policy::simulator::Request::new(&args.method, &args.path);
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
    let outcome = simulator.evaluate(&model, &request, now);
    printer.emit(&json!({
        "decision": outcome.decision,
        "status": outcome.status,
        "reason": outcome.reason,
        "message": outcome.message,
        "policy": outcome.policy,
        "detail": outcome.detail,
        "effects": outcome.effects,
        "not_simulated": outcome.not_simulated,
    }));
    Ok(ExitStatus::Success)
}

fn diff(args: PolicyDiffArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let read = |path: &Path| -> anyhow::Result<Document> {
        let text = read_policy(path)?;
        Document::parse(&text).map_err(|e| xml_error(&path.display().to_string(), &e))
    };
    let (old, new) = (read(&args.old)?, read(&args.new)?);
    let differences = crate::policy::diff(&old, &new);
    for d in &differences {
        if printer.json() {
            let (change, old, new) = match &d.change {
                Change::Added(v) => ("added", None, Some(v)),
                Change::Removed(v) => ("removed", Some(v), None),
                Change::Changed { old, new } => ("changed", Some(old), Some(new)),
            };
            printer.emit(&json!({
                "type": "difference", "path": d.path, "attribute": d.attribute(), "change": change, "old": old, "new": new,
            }));
        } else {
            printer.out(&d.to_string());
        }
    }
    if differences.is_empty() {
        printer.note("the policies are equal in meaning");
        Ok(ExitStatus::Success)
    } else {
        Ok(ExitStatus::Changes)
    }
}
