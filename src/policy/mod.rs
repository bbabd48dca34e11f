//! The policy engine's pure core (no I/O): APIM policy documents parsed with source positions
//! (`document`), their canonical form and semantic diff (`canonical`, `diff`), the typed model and
//! offline simulator (`model`, `simulator`, `token`), the test matrix (`matrix`, `cases`) and the
//! harness that runs it (`harness`, for `policy test`), and the lint with what else `provision
//! validate` checks (`validation`).

pub mod canonical;
pub mod cases;
pub mod diff;
mod document;
pub mod harness;
mod lint;
pub mod matrix;
pub mod model;
pub mod simulator;
pub mod token;
pub mod validation;

pub use canonical::{Canonical, CanonicalNode, canonical};
pub use diff::{Change, Difference, diff};
pub use document::{
    Document, Element, MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS, MAX_POLICY_BYTES, Node, ParseError,
    Position, check_size,
};
pub use lint::{Finding, LintContext, Severity, lint};
