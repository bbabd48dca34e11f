//! `provision verify --env E`: the boundary matrix against the live gateway, Foundry endpoint and
//! ARM, each case with what it expected and got, and where the simulator's prediction on the
//! stored policy differs. Exit 0 only when every case that ran held.

use super::token::options;
use super::{ExitStatus, checked, runtime};
use crate::cli::{GlobalArgs, VerifyArgs};
use crate::embedded;
use crate::engine::signin;
use crate::engine::verify::{self, CaseResult, VerifyOptions};
use crate::hint::Hinted;
use crate::input::read_token_file;
use crate::oauth::cache::TokenCache;
use crate::output::Printer;
use crate::output::events::JsonLine;
use crate::policy::cases;

pub fn run(global: &GlobalArgs, args: VerifyArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let read = |path: &Option<std::path::PathBuf>| path.as_deref().map(read_token_file).transpose();
    let mut verify_options = VerifyOptions {
        sign_in: options(&args.sign_in, Vec::new()),
        token: read(&args.token_file)?,
        foreign_token: read(&args.foreign_token_file)?,
        expired_token: read(&args.expired_token_file)?,
        cases: Vec::new(),
    };
    let cache = TokenCache::for_user()?;
    let checked = checked(global, &args.sign_in.env, &args.sign_in.azure)?;
    // The whole of every case file is checked before the first request.
    for file in &args.cases {
        let text = crate::config::read_yaml_file(file).map_err(|e| {
            Hinted::error(
                format!("cannot read {}: {e}", file.display()),
                "--cases takes a YAML file of cases as `policy test` reads them (docs/policy.md)",
            )
        })?;
        let name = file.display().to_string();
        let specs =
            cases::load(&name, &text, &checked.blueprint.api.path).map_err(anyhow::Error::msg)?;
        verify_options.cases.push((name, specs));
    }
    let blueprint = checked.blueprint.clone();
    runtime()?.block_on(async {
        let timeout = verify_options.sign_in.timeout;
        let _sandbox = embedded::sandbox_for(&blueprint, printer, timeout).await?;
        let clock = signin::clock_for(&blueprint).await?;
        let results = verify::verify(checked, &verify_options, &cache, clock, |a| {
            eprintln!("{}", a.message);
        })
        .await?;
        Ok(print(printer, &blueprint.env, &results))
    })
}

fn print(printer: &Printer, env: &str, results: &[CaseResult]) -> ExitStatus {
    let skipped = results.iter().filter(|r| r.case.skipped.is_some()).count();
    let held = results.iter().filter(|r| r.held).count();
    let failed = results.len() - held - skipped;
    let drifted = results.iter().filter(|r| r.drift.is_some()).count();
    for r in results {
        if printer.json() {
            printer.emit(&JsonLine::BoundaryCase {
                env: env.to_owned(),
                case: r.case.name.clone(),
                target: r.case.target,
                expected: r.case.expected(),
                status: r.status,
                message: r.message.clone(),
                held: r.held,
                skipped: r.case.skipped.clone(),
                predicted_status: r.prediction.as_ref().map(|p| p.status),
                predicted_reason: r.prediction.as_ref().and_then(|p| p.reason.clone()),
                drift: r.drift.clone(),
            });
            continue;
        }
        let verdict = match (&r.case.skipped, r.held) {
            (Some(_), _) => "skip",
            (None, true) => "ok",
            (None, false) => "FAIL",
        };
        let got = r
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        let mut line = format!(
            "{verdict:<5} {:<20} expected {:<8} got {got}",
            r.case.name,
            r.case.expected()
        );
        if let Some(why) = &r.case.skipped {
            line = format!("{verdict:<5} {:<20} skipped: {why}", r.case.name);
        } else if let Some(message) = &r.message {
            line.push_str(&format!(": {message}"));
        }
        // The gateway's message is often the policy's one for every refusal; the simulator's
        // reason says which check it was.
        if let Some(reason) = r.prediction.as_ref().and_then(|p| p.reason.as_deref()) {
            line.push_str(&format!(" [{reason}]"));
        }
        if let Some(drift) = &r.drift {
            line.push_str(&format!("\n      drift: {drift}"));
        }
        printer.out(&line);
    }
    if printer.json() {
        printer.emit(&JsonLine::VerifySummary {
            env: env.to_owned(),
            cases: results.len(),
            held,
            failed,
            skipped,
            drifted,
        });
    } else {
        printer.out(&format!(
            "\n{env}: {held} held, {failed} failed, {skipped} skipped; {drifted} where the simulator's prediction differs from the gateway"
        ));
    }
    if failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}
