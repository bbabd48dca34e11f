//! `provision validate`: load and check environments, render their policies, lint the result.

use super::{ExitStatus, templates_dir};
use crate::cli::{GlobalArgs, ValidateArgs};
use crate::config::{self, Environment};
use crate::hint::Hinted;
use crate::output::events::{EnvironmentStatus, JsonLine};
use crate::output::{ERROR, GOOD, Printer, findings};
use crate::policy::Severity;
use crate::policy::validation;
use crate::render::{self, TemplateSet};

pub fn run(
    global: &GlobalArgs,
    args: ValidateArgs,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let dir = &global.env_dir;
    let names = match &args.env {
        Some(env) => vec![env.clone()],
        None => config::list(dir)
            .map_err(|e| anyhow::anyhow!("cannot list environments in {}: {e}", dir.display()))?,
    };
    if names.is_empty() {
        return Err(Hinted::error(
            format!("no environments in {}", dir.display()),
            "environments are files named <name>.yaml; see --env-dir",
        ));
    }
    let (mut errors, mut warnings) = (0, 0);
    for name in &names {
        let (e, w) = validate_one(global, name, printer);
        errors += e;
        warnings += w;
    }
    if printer.json() {
        let environments = names.len();
        printer.emit(&JsonLine::ValidateSummary {
            environments,
            errors,
            warnings,
        });
    } else if names.len() > 1 {
        let n = names.len();
        printer.note(&format!(
            "{n} environments: {errors} error(s), {warnings} warning(s)"
        ));
    }
    Ok(if errors > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Checks and reports one environment; returns its errors and warnings.
fn validate_one(global: &GlobalArgs, name: &str, printer: &Printer) -> (usize, usize) {
    let (file, outcome) = match config::load(&global.env_dir, name) {
        Ok(Environment::Target(b)) => {
            let dir = templates_dir(&global.templates_dir, &b);
            let outcome = TemplateSet::load(&dir)
                .map_err(|e| validation::template_problems(&e))
                .and_then(|templates| validation::check(&b, &templates));
            (
                b.file.clone(),
                outcome.map(|f| (render::output_file(&b), f)),
            )
        }
        Ok(Environment::Abstract { file, .. }) => {
            if printer.json() {
                let (env, status) = (name.to_owned(), EnvironmentStatus::Abstract);
                printer.emit(&JsonLine::AbstractEnvironment { env, file, status });
            } else {
                let ok = printer.paint(GOOD, "ok");
                printer.out(&format!(
                    "{name}: {ok} (abstract: checked through the environments that extend it)"
                ));
            }
            return (0, 0);
        }
        Err(e) => {
            let file = global.env_dir.join(format!("{name}.yaml"));
            let problems = validation::environment_problems(&e);
            (file.display().to_string(), Err(problems))
        }
    };
    let (errors, warnings) = match outcome {
        Err(problems) => {
            problems
                .iter()
                .for_each(|p| findings::problem(printer, name, p));
            (problems.len(), 0)
        }
        Ok((rendered, findings)) => {
            let count = |s| findings.iter().filter(|f| f.finding.severity == s).count();
            findings
                .iter()
                .for_each(|f| findings::lint(printer, name, &rendered, f));
            (count(Severity::Error), count(Severity::Warning))
        }
    };
    if printer.json() {
        let status = if errors > 0 {
            EnvironmentStatus::Failed
        } else {
            EnvironmentStatus::Ok
        };
        let env = name.to_owned();
        printer.emit(&JsonLine::Environment {
            env,
            file,
            status,
            errors,
            warnings,
        });
    } else if errors == 0 {
        let detail = match warnings {
            0 => String::new(),
            w => format!(" ({w} warning(s))"),
        };
        printer.out(&format!("{name}: {}{detail}", printer.paint(GOOD, "ok")));
    } else {
        let failed = printer.paint(ERROR, "failed");
        printer.out(&format!(
            "{name}: {failed} ({errors} error(s), {warnings} warning(s))"
        ));
    }
    (errors, warnings)
}
