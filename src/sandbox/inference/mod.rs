//! The Foundry (Azure OpenAI) inference data plane: every account with a custom subdomain
//! answers chat completions at `{base}/foundry/{subdomain}/` ([`routes`]), checking its callers
//! as Azure does ([`caller`]), counting its deployments' rate limits ([`limits`]) and answering
//! with the deterministic model stub ([`model`]). `model` is public so that the `model_stub`
//! benchmark, a crate of its own, can measure it.

mod caller;
mod limits;
pub mod model;
mod reply;
mod routes;

pub(crate) use routes::routes;
