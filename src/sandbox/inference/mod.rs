//! The Foundry (Azure OpenAI) inference data plane's building blocks. Public so that the
//! `model_stub` benchmark, a crate of its own, can measure the model.

pub mod model;
