//! `provision` puts a large language model on Azure behind an enterprise security boundary, as code.
//!
//! The crate is layered as described in ARCHITECTURE.md: a pure core (`config`, `render`, `policy`,
//! `cloud`) that does no I/O except through explicit loaders, and an entry layer (`cli`, `commands`,
//! `output`) that talks to the terminal and the file system. The binary in `main.rs` only maps results
//! to exit codes.

pub mod azure;
pub mod cli;
pub mod clock;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod dice;
pub mod embedded;
pub mod engine;
pub mod hint;
pub mod input;
pub mod output;
pub mod policy;
pub mod render;
pub mod resources;
pub mod sandbox;
