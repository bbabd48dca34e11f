//! `provision sandbox clock [advance D | set T]`: reads or moves a running sandbox's clock
//! through its admin endpoints, so expiry and retention can be shown or tested without waiting.
//! The value is checked here first, so a typo is named before anything is sent.

use std::time::Duration;

use serde_json::Value;

use super::ExitStatus;
use crate::cli::{SandboxClockAction, SandboxClockArgs};
use crate::hint::Hinted;
use crate::output::Printer;
use crate::output::events::JsonLine;

/// How long the sandbox may take to answer: it is local, so anything longer means it is stuck.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

pub fn run(args: SandboxClockArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let base = format!("http://{}", args.addr);
    let (path, body) = match &args.action {
        None => ("/_sandbox/clock", None),
        Some(SandboxClockAction::Advance { by }) => {
            crate::clock::parse_duration(by).map_err(|e| {
                Hinted::error(
                    format!("sandbox clock advance: {e}"),
                    "durations are jiff's friendly form (48h, 1h30m, 90s) or ISO 8601 (PT90M)",
                )
            })?;
            ("/_sandbox/clock/advance", Some(ClockMove::Advance { by }))
        }
        Some(SandboxClockAction::Set { to }) => {
            crate::clock::parse_instant(to).map_err(|e| {
                Hinted::error(
                    format!("sandbox clock set: {e}"),
                    "give the instant in UTC (Z) or with an offset, seconds included",
                )
            })?;
            ("/_sandbox/clock/set", Some(ClockMove::Set { to }))
        }
    };
    let url = format!("{base}{path}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, answer) = runtime.block_on(exchange(&url, body))?;
    if status == 400 {
        let message = answer["error"].as_str().unwrap_or("refused").to_owned();
        return Err(Hinted::error(
            format!("sandbox clock: {message}"),
            format!(
                "`provision sandbox clock --addr {}` shows its time now",
                args.addr
            ),
        ));
    }
    let (Some(now), Some(offset)) = (answer["now"].as_str(), answer["offset_seconds"].as_u64())
    else {
        return Err(Hinted::error(
            format!("{url} answered HTTP {status} without the sandbox's time"),
            "check --addr: it must name a running `provision sandbox serve`",
        ));
    };
    if printer.json() {
        printer.emit(&JsonLine::SandboxClock {
            now: now.to_owned(),
            offset_seconds: offset,
        });
    } else {
        printer.out(&format!(
            "sandbox clock: {now} ({offset} s ahead of the system clock)"
        ));
    }
    Ok(ExitStatus::Success)
}

/// The body of a move, as the admin endpoints take it.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum ClockMove<'a> {
    Advance { by: &'a str },
    Set { to: &'a str },
}

/// One request to the sandbox; nothing listening (or no answer in time) is the error to explain.
async fn exchange(url: &str, body: Option<ClockMove<'_>>) -> anyhow::Result<(u16, Value)> {
    // reqwest is built without a crypto provider; the transport installs the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(ANSWER_WAIT)
        .build()?;
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let unreachable = |e: reqwest::Error| {
        Hinted::error(
            format!("no sandbox answered at {url}: {}", causes(&e)),
            "start one with `provision sandbox serve`, or pass --addr HOST:PORT where it listens",
        )
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let answer = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, answer))
}

/// An error with its causes (`error sending request: connection refused`): reqwest's own message
/// leaves out the one that says what happened.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
