//! Client credentials with a federated credential: `client_assertion_type=
//! urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a CI's OIDC token as
//! `client_assertion`, exchanged for an app-only token of the app whose federated identity
//! credential names the token's issuer, subject and audience (workload identity federation).
//!
//! What Entra answers, and the sandbox with it:
//! - no credential of the app has exactly the token's issuer and subject (compared case-sensitively
//!   since 2024: "Federated identity credentials now use case-sensitive matching", Entra's
//!   breaking-changes page) and one of its audiences: 400 `invalid_request` AADSTS70021 "No
//!   matching federated identity record found for presented assertion. Assertion Issuer: '…'.
//!   Assertion Subject: '…'. Assertion Audience: '…'. …" (Azure/azure-workload-identity#616);
//! - a token past its `exp` (or before its `nbf`): 401 `invalid_client` AADSTS700024 "Client
//!   assertion is not within its valid time range. Current time: …, assertion valid from …, expiry
//!   time of assertion …" (AzureAD/microsoft-authentication-library-for-dotnet#4951), with no
//!   clock skew allowed;
//! - an unknown client id: AADSTS700016, as for every grant.
//!
//! The sandbox cannot fetch another issuer's keys, so it verifies only tokens of its own CI
//! issuers (`ci.rs`); a credential naming any other issuer matches but its token is refused with
//! AADSTS50166, Entra's "Request to External OIDC endpoint failed."

use axum::response::Response;
use serde_json::Value;

use super::ci;
use super::token::{TokenForm, app_only_token, scope_audience};
use super::{Failure, client_app, missing};
use crate::policy::token::Jwt;
use crate::sandbox::Shared;
use crate::sandbox::graph::federated_credentials_of;

pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(super) fn exchange(shared: &Shared, tid: &str, form: &TokenForm) -> Result<Response, Failure> {
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?;
    match form.client_assertion_type.as_deref() {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(Failure::new(
                "invalid_request",
                50_027,
                format!(
                    "JWT token is invalid or malformed: client_assertion_type '{other}' is not {JWT_BEARER}."
                ),
            ));
        }
        None => return Err(missing("client_assertion_type")),
    }
    let assertion = form
        .client_assertion
        .as_deref()
        .ok_or_else(|| missing("client_assertion"))?;
    let (app_id, principal, audience, jwt, iss) = {
        let state = shared.settled_state();
        let app = client_app(shared, &state, tid, client_id)?;
        let app_id = app.str("appId").unwrap_or_default().to_owned();
        let jwt = Jwt::parse(assertion).map_err(|why| malformed(&why))?;
        let iss = jwt.claim_str("iss").unwrap_or_default().to_owned();
        let sub = jwt.claim_str("sub").unwrap_or_default().to_owned();
        let audiences: Vec<String> = match jwt.claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let matched = federated_credentials_of(&state, tid, app.id()).any(|c| {
            let text = |k: &str| c.body.get(k).and_then(Value::as_str).unwrap_or_default();
            let audience = c
                .body
                .get("audiences")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or_default();
            text("issuer") == iss
                && text("subject") == sub
                && audiences.iter().any(|a| a == audience)
        });
        if !matched {
            return Err(Failure::new(
                "invalid_request",
                70_021,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
                    audiences.join(",")
                ),
            ));
        }
        let principal = state
            .service_principal_by_app_id(tid, &app_id)
            .map(|sp| sp.id().to_owned())
            .ok_or_else(|| {
                Failure::new(
                    "invalid_client",
                    7_000_229,
                    format!(
                        "The client application {app_id} is missing service principal in the tenant {tid}."
                    ),
                )
            })?;
        let audience = scope_audience(shared, &state, tid, form)?;
        (app_id, principal, audience, jwt, iss)
    };
    // The issuer's key is read under the state lock of its own: not while this one is held.
    verify(shared, &jwt, &iss)?;
    app_only_token(
        shared,
        tid,
        (&audience.0, audience.1),
        &app_id,
        &principal,
        "2",
    )
}

fn malformed(why: &str) -> Failure {
    Failure::new(
        "invalid_request",
        50_027,
        format!("JWT token is invalid or malformed: {why}."),
    )
}

/// The token's signature against its issuer's keys, then its lifetime on the sandbox's clock.
fn verify(shared: &Shared, jwt: &Jwt, iss: &str) -> Result<(), Failure> {
    let issuer = ci::issuer_key_of(shared, iss).ok_or_else(|| {
        Failure::new(
            "invalid_request",
            50_166,
            format!(
                "Request to External OIDC endpoint failed: the sandbox knows the keys of its own CI issuers only, not {iss}."
            ),
        )
    })?;
    let signer = shared
        .issuer_signer(issuer)
        .ok_or_else(super::server_error)?;
    let signed = jwt.alg == "RS256"
        && jwt.kid.as_deref() == Some(signer.kid.as_str())
        && signer.verify_rs256(jwt.signing_input(), jwt.signature());
    if !signed {
        return Err(Failure::new(
            "invalid_client",
            50_013,
            "Assertion failed signature validation.",
        )
        .unauthorized());
    }
    let now = shared.now_s();
    let exp = jwt.time_claim("exp").map_err(|why| malformed(&why))?;
    let nbf = jwt.time_claim("nbf").map_err(|why| malformed(&why))?;
    if exp.is_none_or(|exp| now >= exp) || nbf.is_some_and(|nbf| now < nbf) {
        return Err(Failure::new(
            "invalid_client",
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                entra_instant(now),
                entra_instant(nbf.unwrap_or(0)),
                exp.map_or_else(|| "(none)".to_owned(), entra_instant)
            ),
        )
        .unauthorized());
    }
    Ok(())
}

/// `2024-10-02T22:05:03.0000000Z`: the seven-digit form Entra's AADSTS700024 text uses.
fn entra_instant(seconds: i64) -> String {
    let ms = u64::try_from(seconds.max(0))
        .unwrap_or(0)
        .saturating_mul(1000);
    let text = crate::clock::format_utc_millis(ms);
    match text.strip_suffix('Z') {
        Some(head) => format!("{head}.0000000Z"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_have_seven_digits_as_entras_do() {
        assert_eq!(entra_instant(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(entra_instant(1_727_906_703), "2024-10-02T22:05:03.0000000Z");
    }
}
