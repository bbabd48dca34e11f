//! Progress of `up`: a live line per resource (state and elapsed time) on a terminal, plain lines
//! when stderr is not one, JSON lines on stdout with `--output json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{JsonLine, ProgressStep};
use crate::clock::format_duration;
use crate::engine::Event;
use crate::resources::Address;

enum Mode {
    Bars {
        multi: MultiProgress,
        bars: HashMap<Address, ProgressBar>,
    },
    Lines,
    Json,
}

pub struct Progress {
    mode: Mutex<Mode>,
    start: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(json: bool, quiet: bool) -> Progress {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && !quiet {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: HashMap::new(),
            }
        } else {
            Mode::Lines
        };
        Progress {
            mode: Mutex::new(mode),
            start: Instant::now(),
            quiet,
        }
    }

    pub fn event(&self, event: &Event) {
        let mut mode = self.mode.lock().unwrap_or_else(|e| e.into_inner());
        let at = self.start.elapsed();
        match &mut *mode {
            Mode::Json => {
                let (address, step) = match event {
                    Event::Started { address } => (address, ProgressStep::Started),
                    Event::Writing { address, what } => {
                        (address, ProgressStep::Writing { what: what.clone() })
                    }
                    Event::Done {
                        address,
                        writes,
                        elapsed,
                    } => (
                        address,
                        ProgressStep::Done {
                            writes: *writes,
                            elapsed_ms: millis(*elapsed),
                        },
                    ),
                    Event::Failed { address, error } => (
                        address,
                        ProgressStep::Failed {
                            error: error.clone(),
                        },
                    ),
                };
                let line = JsonLine::Progress {
                    step,
                    kind: address.kind,
                    name: address.name.clone(),
                    at_ms: millis(at),
                };
                let text = super::json_text(&line);
                super::stdout_written(writeln!(std::io::stdout().lock(), "{text}"));
            }
            Mode::Lines => {
                if self.quiet {
                    return;
                }
                let text = match event {
                    Event::Started { address } => format!("{address}: started"),
                    Event::Writing { address, what } => format!("{address}: {what}"),
                    Event::Done {
                        address, writes: 0, ..
                    } => format!("{address}: unchanged"),
                    Event::Done {
                        address,
                        writes,
                        elapsed,
                    } => format!(
                        "{address}: done ({writes} write{}, {})",
                        if *writes == 1 { "" } else { "s" },
                        format_duration(*elapsed)
                    ),
                    Event::Failed { address, error } => format!("{address}: failed: {error}"),
                };
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "[{:>7}] {text}", format_duration(at));
            }
            Mode::Bars { multi, bars } => match event {
                Event::Started { address } => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                            .expect("a valid template"),
                    );
                    bar.set_prefix(address.to_string());
                    bar.set_message("checking");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(address.clone(), bar);
                }
                Event::Writing { address, what } => {
                    if let Some(bar) = bars.get(address) {
                        bar.set_message(what.clone());
                    }
                }
                Event::Done {
                    address,
                    writes,
                    elapsed,
                } => {
                    if let Some(bar) = bars.get(address) {
                        let state = if *writes == 0 {
                            "unchanged".to_owned()
                        } else {
                            format!("done in {}", format_duration(*elapsed))
                        };
                        bar.finish_with_message(state);
                    }
                }
                Event::Failed { address, error } => {
                    if let Some(bar) = bars.get(address) {
                        bar.abandon_with_message(format!("failed: {error}"));
                    }
                }
            },
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
