//! How a model deployment follows the new versions Azure publishes: its `versionUpgradeOption`.
//! Azure upgrades deployments on its own, so this is policy the environment states, and a version
//! Azure moved a deployment to under it is not drift (docs/reference/dataplane.md §4.2).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `upgrade:` of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Upgrade {
    /// Keep the reviewed version until Azure retires it, then move to the default version
    /// (OnceCurrentVersionExpired). The default: the version stays the one reviewed, and the
    /// deployment keeps answering when that version expires.
    #[default]
    OnExpiry,
    /// Move as soon as Azure makes a newer version the default (OnceNewDefaultVersionAvailable,
    /// Azure's own default when none is sent).
    WhenDefaultChanges,
    /// Never move (NoAutoUpgrade): the deployment stops answering (410) when its version retires.
    Never,
}

impl Upgrade {
    /// The deployment's `properties.versionUpgradeOption`.
    pub fn option(self) -> &'static str {
        match self {
            Upgrade::OnExpiry => "OnceCurrentVersionExpired",
            Upgrade::WhenDefaultChanges => "OnceNewDefaultVersionAvailable",
            Upgrade::Never => "NoAutoUpgrade",
        }
    }

    /// How the environment file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Upgrade::OnExpiry => "on-expiry",
            Upgrade::WhenDefaultChanges => "when-default-changes",
            Upgrade::Never => "never",
        }
    }

    /// Whether a deployment with this setting may be found on a newer version than it names.
    pub fn lets_azure_move(self) -> bool {
        self != Upgrade::Never
    }
}
