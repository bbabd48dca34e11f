//! What the user can do about an error. Every error type that reaches the user and knows a
//! remedy implements [`Remedy`]; the printer finds it along the error's chain and prints it on
//! its own `hint:` line (or in the `hint` field of the JSON `error` line). This module sits below
//! every error type so that each can implement it without importing the printer.

use std::borrow::Cow;

/// An error that knows what the user can do about it.
pub trait Remedy {
    /// The remedy, one sentence or two, without the `hint:` prefix; `None` when there is none
    /// worth printing.
    fn hint(&self) -> Option<Cow<'_, str>>;
}

/// An error whose remedy is known where it is raised rather than from its type: a message and
/// the hint under it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl Hinted {
    /// An `anyhow::Error` carrying a hint line.
    pub fn error(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Hinted {
            message: message.into(),
            hint: hint.into(),
        })
    }
}

impl Remedy for Hinted {
    /// An empty hint is no hint: never an empty `hint:` line.
    fn hint(&self) -> Option<Cow<'_, str>> {
        (!self.hint.is_empty()).then_some(Cow::Borrowed(&self.hint))
    }
}
