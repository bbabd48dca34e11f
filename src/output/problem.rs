//! An error as the user reads it: `error: …`, the quoted source line, `hint: …`. Every command's
//! errors, and `validate`'s findings about environments and templates, go through here, so a hint
//! looks the same wherever it comes from.

use std::borrow::Cow;
use std::error::Error;

use crate::access::UnknownAuthChoice;
use crate::azure::credential::CredentialError;
use crate::azure::error::ApiError;
use crate::azure::retry::DeadlineExceeded;
use crate::azure::session::WireError;
use crate::azure::sign_in::SignInError;
use crate::config::{ConfigError, Diagnostic};
use crate::engine::saved::{PlanFileError, StalePlan};
use crate::engine::{EngineError, Stopped};
use crate::hint::{Hinted, Remedy};
use crate::oauth::cache::CacheError;
use crate::oauth::device::OAuthError;
use crate::policy::ParseError;
use crate::render::RenderError;
use crate::resources::federation::TrustError;
use crate::sandbox::StateDirError;

/// One problem: what is wrong (with where), the source line it points into, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub excerpt: Option<String>,
    pub hint: Option<String>,
}

impl Problem {
    pub fn of_diagnostic(d: &Diagnostic) -> Problem {
        Problem {
            message: d.to_string(),
            excerpt: d.excerpt.clone(),
            hint: d.hint().map(Cow::into_owned),
        }
    }
}

/// The problems an error stands for: one per diagnostic for an environment's errors (they are
/// reported all at once), else one whose message follows the chain of causes.
pub fn problems(error: &anyhow::Error) -> Vec<Problem> {
    let config = error.chain().find_map(|e| {
        e.downcast_ref::<ConfigError>()
            .or(match e.downcast_ref::<RenderError>() {
                Some(RenderError::Vars(config)) => Some(config),
                _ => None,
            })
    });
    if let Some(config) = config {
        return config
            .diagnostics
            .iter()
            .map(Problem::of_diagnostic)
            .collect();
    }
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        // An error that quotes its cause in its own message (`{address}: {error}`) would
        // otherwise say the same thing twice.
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(&format!("\n  caused by: {cause}"));
        }
    }
    let hint = error.chain().find_map(remedy);
    vec![Problem {
        message,
        excerpt: None,
        hint,
    }]
}

/// The remedy of one error in a chain, if its type has one. Every error type that implements
/// [`Remedy`] and can reach the user is listed here: a chain holds `dyn Error`, from which only a
/// concrete type can be recovered.
fn remedy(error: &(dyn Error + 'static)) -> Option<String> {
    const REMEDIES: &[fn(&(dyn Error + 'static)) -> Option<String>] = &[
        of::<Hinted>,
        of::<Stopped>,
        of::<EngineError>,
        of::<WireError>,
        of::<ApiError>,
        of::<SignInError>,
        of::<CredentialError>,
        of::<UnknownAuthChoice>,
        of::<StateDirError>,
        of::<DeadlineExceeded>,
        of::<RenderError>,
        of::<ParseError>,
        of::<OAuthError>,
        of::<CacheError>,
        of::<PlanFileError>,
        of::<StalePlan>,
        of::<TrustError>,
    ];
    REMEDIES.iter().find_map(|remedy| remedy(error))
}

fn of<T: Remedy + Error + 'static>(error: &(dyn Error + 'static)) -> Option<String> {
    error
        .downcast_ref::<T>()
        .and_then(|e| e.hint())
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_deep_in_the_chain_is_found() {
        let error = anyhow::Error::new(DeadlineExceeded {
            budget: std::time::Duration::from_secs(1),
            left: std::time::Duration::ZERO,
            waiting_for: "x".to_owned(),
            last: None,
        })
        .context("reading the account");
        let problems = problems(&error);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("raise --timeout, or run the command again: it picks up what already exists")
        );
        assert!(
            problems[0]
                .message
                .starts_with("reading the account\n  caused by: "),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn a_cause_quoted_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Outer(#[source] Hinted);
        let error = anyhow::Error::new(Outer(Hinted {
            message: "inner".to_owned(),
            hint: "do this".to_owned(),
        }));
        assert_eq!(
            problems(&error),
            vec![Problem {
                message: "outer: inner".to_owned(),
                excerpt: None,
                hint: Some("do this".to_owned()),
            }]
        );
    }
}
