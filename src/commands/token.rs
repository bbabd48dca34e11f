//! `provision token --env E`: signs in as the environment's client app with the device code flow
//! (a saved sign-in first), and shows who signed in, or prints the token alone (`--print`), or a
//! ready-to-run MSAL for Python client (`--snippet python`); `--logout` forgets the sign-in.

use super::{ExitStatus, checked, runtime};
use crate::cli::{GlobalArgs, SignInArgs, SnippetLanguage, TokenArgs};
use crate::clock::format_utc_seconds;
use crate::embedded;
use crate::engine::signin::{self, SignInOptions, UserSignIn};
use crate::oauth::cache::TokenCache;
use crate::output::Printer;
use crate::output::events::JsonLine;
use crate::policy::token::Jwt;
use crate::render::snippet::{self, SnippetInputs};

pub fn run(global: &GlobalArgs, args: TokenArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let cache = TokenCache::for_user()?;
    let options = options(&args.sign_in, args.scopes);
    let checked = checked(global, &args.sign_in.env, &args.sign_in.azure)?;
    let blueprint = checked.blueprint.clone();
    if args.logout {
        let client = signin::client_of(&blueprint, options.client.as_deref())?;
        let removed = cache.remove(&blueprint.env, &client.unique_name)?;
        if printer.json() {
            printer.emit(&JsonLine::SignedOut {
                env: blueprint.env.clone(),
                client: client.unique_name.clone(),
                removed,
            });
        } else if removed {
            printer.out(&format!(
                "signed out of {} as {}",
                blueprint.env, client.unique_name
            ));
        } else {
            printer.out(&format!(
                "no saved sign-in for {} as {}",
                blueprint.env, client.unique_name
            ));
        }
        return Ok(ExitStatus::Success);
    }
    runtime()?.block_on(async {
        let timeout = options.timeout;
        let _sandbox = embedded::sandbox_for(&blueprint, printer, timeout).await?;
        if let Some(SnippetLanguage::Python) = args.snippet {
            let target = signin::target(checked, &options).await?;
            printer.out_raw(&snippet::msal_python(&SnippetInputs {
                authority: format!("{}/{}", target.login, target.tenant_id),
                client_id: target.client_id,
                scope: target.scopes[0].clone(),
                api_url: target.api_url,
                deployment: blueprint
                    .foundry
                    .deployments
                    .first()
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                sandbox: blueprint.cloud == crate::cloud::Cloud::Sandbox,
            }));
            return Ok(ExitStatus::Success);
        }
        let clock = signin::clock_for(&blueprint).await?;
        let signed = signin::user_sign_in(checked, &options, &cache, clock, |a| {
            // The instruction goes to stderr whatever the verbosity: without it no one can sign in.
            eprintln!("{}", a.message);
        })
        .await?;
        if args.print {
            printer.out(signed.saved.access_token().expose());
        } else {
            show(printer, &signed);
        }
        Ok(ExitStatus::Success)
    })
}

/// The sign-in options every client command shares.
pub(super) fn options(args: &SignInArgs, scopes: Vec<String>) -> SignInOptions {
    SignInOptions {
        client: args.client.clone(),
        scopes,
        force: args.force,
        timeout: args.azure.timeout,
    }
}

fn show(printer: &Printer, signed: &UserSignIn) {
    let saved = &signed.saved;
    let token = saved.access_token();
    let claims = Jwt::parse(token.expose()).ok();
    let claim = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.claim_str(name))
            .map(str::to_owned)
    };
    let expires_on = format_utc_seconds(saved.expires_on());
    if printer.json() {
        printer.emit(&JsonLine::Token {
            env: saved.env.clone(),
            client: saved.client.clone(),
            client_id: saved.client_id.clone(),
            user: saved.user.clone(),
            audience: claim("aud"),
            scopes: claim("scp"),
            expires_on,
            source: signed.source.name().to_owned(),
            cache_file: signed.cache_file.display().to_string(),
        });
        return;
    }
    let dash = || "-".to_owned();
    printer.out(&format!(
        "user      {}\nclient    {} ({})\naudience  {}\nscopes    {}\nexpires   {expires_on}\nsource    {}\ncache     {}",
        saved.user.clone().unwrap_or_else(dash),
        saved.client,
        saved.client_id,
        claim("aud").unwrap_or_else(dash),
        claim("scp").unwrap_or_else(dash),
        signed.source.name(),
        signed.cache_file.display(),
    ));
}
