//! Integration tests: the real `provision` binary, and the sandbox over HTTP. One test crate with
//! modules, so the suite links one binary.

mod architecture;
mod arm_apim;
mod arm_cognitive;
mod arm_fixtures;
mod arm_resources;
mod bad_inputs;
mod boundary;
mod cli_usage;
mod config_inputs;
mod contention;
mod down_cli;
mod down_kill;
mod durations;
mod gateway;
mod golden;
mod hostile_args;
mod inference;
mod lint_fixtures;
mod output_contract;
mod policy_cli;
mod policy_inputs;
mod project;
mod render_check;
mod repository;
mod sandbox_admin;
mod sandbox_clock;
mod sandbox_graph;
mod sandbox_login;
mod sandbox_security;
mod sandbox_support;
mod schema_cli;
mod template_vars;
mod up_e2e;
mod whoami_cli;
mod wire;
