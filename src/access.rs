//! How `provision` reaches Azure, in the words that both the environment files and the wire layer
//! use: how the operator signs in ([`AuthChoice`]), which API a request goes to ([`Service`]), and
//! how a value is written into those APIs' URLs.
//!
//! These words sit below `config`, `resources` and `azure` so that each of them can name a sign-in
//! method or an API without importing the others: the environment file's `auth:` is not a
//! reason for the core to depend on the wire layer.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::hint::Remedy;

/// `--auth` (or `auth:` in the environment file): how the operator signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthChoice {
    /// Environment client secret, then workload identity, then managed identity, then the Azure
    /// CLI / Azure Developer CLI.
    Auto,
    /// The Azure CLI's signed-in account (`az login`).
    Cli,
    /// A federated token file (Kubernetes workload identity; GitHub Actions via azure/login).
    WorkloadIdentity,
    /// The managed identity of the machine or service the command runs on.
    ManagedIdentity,
    /// A service principal's client secret, from environment variables.
    ClientSecret,
    /// The GitHub Actions OIDC token, exchanged as a client assertion.
    GithubOidc,
    /// Client credentials against the local sandbox.
    Sandbox,
}

impl AuthChoice {
    pub const ALL: [AuthChoice; 7] = [
        AuthChoice::Auto,
        AuthChoice::Cli,
        AuthChoice::WorkloadIdentity,
        AuthChoice::ManagedIdentity,
        AuthChoice::ClientSecret,
        AuthChoice::GithubOidc,
        AuthChoice::Sandbox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AuthChoice::Auto => "auto",
            AuthChoice::Cli => "cli",
            AuthChoice::WorkloadIdentity => "workload-identity",
            AuthChoice::ManagedIdentity => "managed-identity",
            AuthChoice::ClientSecret => "client-secret",
            AuthChoice::GithubOidc => "github-oidc",
            AuthChoice::Sandbox => "sandbox",
        }
    }
}

impl fmt::Display for AuthChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AuthChoice {
    type Err = UnknownAuthChoice;

    fn from_str(s: &str) -> Result<AuthChoice, UnknownAuthChoice> {
        AuthChoice::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownAuthChoice(s.to_owned()))
    }
}

/// A sign-in method that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown --auth value '{0}'")]
pub struct UnknownAuthChoice(pub String);

impl Remedy for UnknownAuthChoice {
    fn hint(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(
            "use one of auto, cli, workload-identity, managed-identity, client-secret, \
             github-oidc, sandbox",
        ))
    }
}

/// Which API a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Arm,
    Graph,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Arm => "ARM",
            Service::Graph => "Microsoft Graph",
        })
    }
}

/// A key inside an OData `(…='…')` segment: single quotes doubled, and percent-encoding where a
/// URL path needs it.
pub fn odata_key(value: &str) -> String {
    percent_encode(&value.replace('\'', "''"), b"-._~!$&'()*+,;=:@")
}

/// A URL query parameter value.
pub fn query_value(value: &str) -> String {
    percent_encode(value, b"-._~!$'()*,;:@/")
}

fn percent_encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_by_name() {
        for choice in AuthChoice::ALL {
            assert_eq!(choice.name().parse::<AuthChoice>(), Ok(choice));
        }
        let error = "device-code".parse::<AuthChoice>().unwrap_err();
        assert_eq!(error.to_string(), "unknown --auth value 'device-code'");
        assert_eq!(
            error.hint().unwrap(),
            "use one of auto, cli, workload-identity, managed-identity, client-secret, \
             github-oidc, sandbox"
        );
    }

    #[test]
    fn odata_keys_double_quotes_and_encode_what_a_path_can_not_hold() {
        assert_eq!(odata_key("provision-llm-prod"), "provision-llm-prod");
        assert_eq!(odata_key("o'brien app"), "o''brien%20app");
        assert_eq!(odata_key("a/b#c?"), "a%2Fb%23c%3F");
        assert_eq!(query_value("id eq 'x'"), "id%20eq%20'x'");
    }
}
