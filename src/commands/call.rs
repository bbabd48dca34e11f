//! `provision call --env E --message TEXT`: signs in as the environment's client app (the saved
//! sign-in first) and sends one chat completions request through the gateway, printing the
//! model's answer, or the gateway's refusal with what to do.

use std::io::Write;

use serde_json::{Map, Value};

use super::token::options;
use super::{ExitStatus, checked, runtime};
use crate::cli::{CallArgs, GlobalArgs};
use crate::embedded;
use crate::engine::call::{self, chat_url};
use crate::engine::signin;
use crate::hint::Hinted;
use crate::oauth::cache::TokenCache;
use crate::output::Printer;
use crate::output::events::JsonLine;

pub fn run(global: &GlobalArgs, args: CallArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mut body = request_body(&args)?;
    if args.stream {
        body.insert("stream".to_owned(), Value::Bool(true));
    }
    let body = serde_json::to_vec(&Value::Object(body))?;
    let cache = TokenCache::for_user()?;
    let options = options(&args.sign_in, Vec::new());
    let checked = checked(global, &args.sign_in.env, &args.sign_in.azure)?;
    let blueprint = checked.blueprint.clone();
    let deployment = match &args.deployment {
        Some(name) => name.clone(),
        None => blueprint
            .foundry
            .deployments
            .first()
            .map(|d| d.name.clone())
            .ok_or_else(|| {
                Hinted::error(
                    format!("{}: the environment deploys no model", blueprint.file),
                    "add one under `foundry.deployments`, or pass --deployment",
                )
            })?,
    };
    runtime()?.block_on(async {
        let _sandbox = embedded::sandbox_for(&blueprint, printer, options.timeout).await?;
        let clock = signin::clock_for(&blueprint).await?;
        let signed = signin::user_sign_in(checked, &options, &cache, clock, |a| {
            eprintln!("{}", a.message);
        })
        .await?;
        let url = chat_url(&signed.saved.api_url, &deployment);
        let token = signed.saved.access_token();
        let live = args.stream && !printer.json();
        let mut print_piece = |text: &str| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        // Streamed for JSON output too (the request asked for events), but printed once, whole.
        let mut keep = |_: &str| {};
        let on_text: Option<&mut call::OnText<'_>> = match (args.stream, live) {
            (true, true) => Some(&mut print_piece),
            (true, false) => Some(&mut keep),
            (false, _) => None,
        };
        let reply = call::chat(&blueprint, &url, &token, body, on_text).await?;
        if printer.json() {
            printer.emit(&JsonLine::Answer {
                env: blueprint.env.clone(),
                deployment,
                status: reply.status,
                model: reply.model,
                content: reply.content,
            });
        } else if live {
            printer.out("");
        } else {
            printer.out(&reply.content);
        }
        Ok(ExitStatus::Success)
    })
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// `--message` as a one-message conversation, or `--body` as given.
fn request_body(args: &CallArgs) -> anyhow::Result<Map<String, Value>> {
    match (&args.message, &args.body) {
        (Some(text), _) => {
            let mut body = Map::new();
            let message = Message {
                role: "user",
                content: text,
            };
            body.insert("messages".to_owned(), serde_json::to_value([message])?);
            Ok(body)
        }
        (None, Some(path)) => crate::input::read_request_body(path),
        (None, None) => Err(Hinted::error(
            "call: nothing to send",
            "pass --message TEXT, or --body FILE with a chat completions request",
        )),
    }
}
