//! `provision bootstrap github|azure-devops --env <name> …`: makes the identity a pipeline
//! deploys the environment with and prints the variables to set in the CI. Never a secret: the
//! pipeline signs in with its CI's OIDC token.

use super::{ExitStatus, load_target, runtime};
use crate::cli::{AzureArgs, BootstrapCommand, GlobalArgs};
use crate::engine::{self, Bootstrapped};
use crate::output::Printer;
use crate::output::events::JsonLine;
use crate::resources::federation::{GithubTrigger, Pipeline};

pub fn run(
    global: &GlobalArgs,
    command: BootstrapCommand,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let (env, azure, pipeline) = match command {
        BootstrapCommand::Github(args) => {
            let trigger = match (args.environment, args.pull_request, args.branch) {
                (Some(name), _, _) => GithubTrigger::Environment(name),
                (None, true, _) => GithubTrigger::PullRequest,
                (None, false, branch) => {
                    GithubTrigger::Branch(branch.unwrap_or_else(|| "main".to_owned()))
                }
            };
            let pipeline = Pipeline::Github {
                repo: args.repo,
                trigger,
            };
            (args.env, args.azure, pipeline)
        }
        BootstrapCommand::AzureDevops(args) => {
            let pipeline = Pipeline::AzureDevops {
                org: args.org,
                org_id: args.org_id,
                project: args.project,
                connection: args.service_connection,
            };
            (args.env, args.azure, pipeline)
        }
    };
    let AzureArgs { auth, timeout } = azure;
    let blueprint = load_target(&global.env_dir, &env)?;
    let credential = engine::credential_plan(auth, &blueprint)?;
    let made = runtime()?.block_on(engine::bootstrap(
        &blueprint,
        &credential,
        timeout,
        &pipeline,
    ))?;
    print(printer, &blueprint.env, made);
    Ok(ExitStatus::Success)
}

fn print(printer: &Printer, env: &str, made: Bootstrapped) {
    for note in &made.notes {
        printer.note(&format!("note: {note}"));
    }
    if printer.json() {
        printer.emit(&JsonLine::Bootstrap {
            env: env.to_owned(),
            client_id: made.client_id,
            tenant_id: made.tenant_id,
            subscription_id: made.subscription_id,
            principal_id: made.principal_id,
            issuer: made.trust.issuer,
            subject: made.trust.subject,
            changes: made.changes,
            notes: made.notes,
        });
        return;
    }
    if made.changes.is_empty() {
        printer.note("nothing to change: the deployment identity is in place");
    }
    for change in &made.changes {
        printer.note(&format!("+ {change}"));
    }
    printer.note(&format!(
        "trusts tokens from {} with subject {}; set these in the pipeline (no secret):",
        made.trust.issuer, made.trust.subject
    ));
    printer.out(&format!(
        "AZURE_CLIENT_ID={}\nAZURE_TENANT_ID={}\nAZURE_SUBSCRIPTION_ID={}",
        made.client_id, made.tenant_id, made.subscription_id
    ));
}
