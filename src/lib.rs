//! `provision` puts a large language model on Azure behind an enterprise security boundary, as code.
//!
//! The crate is layered, and imports only point down: the entry (`cli`, `commands`) drives the
//! `engine`, which drives the pure core (`access`, `config`, `render`, `policy`, `resources`,
//! `cloud`, `clock`, `dice`: no I/O except through explicit loaders) and the wire layer (`azure`);
//! `sandbox` and `output` sit beside them. The core imports nothing outside the core, and no two
//! sibling modules import each other at any level; `tests/integration/architecture.rs` reads the
//! source and holds both. The binary in `main.rs` only maps results to exit codes.

pub mod access;
pub mod azure;
pub mod boundary;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod dataplane;
pub mod dice;
pub mod embedded;
pub mod engine;
pub mod hint;
pub mod input;
pub mod oauth;
pub mod output;
pub mod policy;
pub mod render;
pub mod resources;
pub mod sandbox;
