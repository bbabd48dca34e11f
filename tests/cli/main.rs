//! Tests through the real `provision` binary. One integration-test crate with modules, so the
//! suite links one binary.

mod bad_inputs;
mod golden;
mod lint_fixtures;
mod policy_cli;
mod project;
mod render_check;
