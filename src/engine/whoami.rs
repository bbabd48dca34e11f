//! Who the tool is in an environment's tenant: signed in the way `plan` and `up` will, with the
//! environment's subscription read. A wrong credential fails here, in seconds, with the reason.

use std::time::Duration;

use crate::azure::credential::CredentialPlan;
use crate::azure::retry::Deadline;
use crate::config::Blueprint;
use crate::hint::Hinted;
use crate::policy::token::Jwt;

/// The signed-in identity, from the ARM token's claims (the token itself is never kept), and
/// the subscription as it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The credential that signed in.
    pub credential: String,
    pub tenant_id: Option<String>,
    pub object_id: Option<String>,
    pub app_id: Option<String>,
    pub subscription_name: String,
    pub subscription_state: String,
}

pub async fn whoami(
    blueprint: &Blueprint,
    credential: &CredentialPlan,
    timeout: Duration,
) -> anyhow::Result<Identity> {
    let azure = super::sign_in(blueprint, credential, Deadline::after(timeout, "sign-in"))?;
    identify(&azure, blueprint).await
}

/// Who `azure` signed in as, and the subscription as it sees it.
pub(super) async fn identify(
    azure: &crate::azure::Azure,
    blueprint: &Blueprint,
) -> anyhow::Result<Identity> {
    let scope = blueprint
        .cloud
        .endpoints(&blueprint.sandbox_address)
        .arm_scope();
    let token = azure.session.credentials().token(&scope).await?;
    let claims = Jwt::parse(token.expose()).ok();
    let claim = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.claim_str(name))
            .map(str::to_owned)
    };
    let subscription_id = format!("/subscriptions/{}", blueprint.subscription_id);
    let subscription = azure.arm.get(&subscription_id).await?.ok_or_else(|| {
        Hinted::error(
            format!(
                "{}: subscription {} is not visible to this identity",
                blueprint.file, blueprint.subscription_id
            ),
            "check `subscription_id` in the environment file, and that the identity has a role \
             on the subscription",
        )
    })?;
    let text = |field: &str| {
        subscription
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Identity {
        credential: azure.session.credentials().method().to_owned(),
        tenant_id: claim("tid"),
        object_id: claim("oid"),
        app_id: claim("appid").or_else(|| claim("azp")),
        subscription_name: text("displayName"),
        subscription_state: text("state"),
    })
}
