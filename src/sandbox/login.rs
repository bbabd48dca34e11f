//! Entra ID login endpoints (to be written).

use std::sync::Arc;

use axum::Router;

use super::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
