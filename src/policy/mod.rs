//! The policy engine's pure core: APIM policy documents parsed with source positions, and the lint
//! that `provision validate` runs over rendered policies.

mod document;
mod lint;

pub use document::{Document, Element, Node, ParseError, Position};
pub use lint::{Finding, LintContext, Severity, lint};
