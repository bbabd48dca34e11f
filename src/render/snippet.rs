//! The notebook client of the reference architecture, as a ready-to-run MSAL for Python script:
//! the device code flow as the environment's public client (MSAL's
//! `initiate_device_flow`/`acquire_token_by_device_flow`, with its token cache so a second run
//! does not prompt), then one chat completions call through the gateway with the token.
//! Values are written as JSON string literals, which Python reads as the same strings.

/// What the snippet fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetInputs {
    /// `{login}/{tenant}`.
    pub authority: String,
    pub client_id: String,
    pub scope: String,
    pub api_url: String,
    pub deployment: String,
    /// The sandbox speaks plain HTTP on loopback, and MSAL checks an authority by its
    /// well-known document only when told not to look it up in Microsoft's list.
    pub sandbox: bool,
}

/// The Azure OpenAI data-plane version the gateway's API serves (the sandbox's and Azure's GA).
pub const CHAT_API_VERSION: &str = "2024-10-21";

fn literal(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The script's text.
pub fn msal_python(inputs: &SnippetInputs) -> String {
    let discovery = if inputs.sandbox {
        "    # The provision sandbox is not in Microsoft's list of authorities.\n    instance_discovery=False,\n"
    } else {
        ""
    };
    format!(
        r#"# Sign in with the device code flow and call the model through the API gateway.
# Needs: pip install msal requests
import json
import os
import sys

import msal
import requests

AUTHORITY = {authority}
CLIENT_ID = {client_id}
SCOPES = [{scope}]
API_URL = {api_url}
DEPLOYMENT = {deployment}
API_VERSION = {api_version}

cache = msal.SerializableTokenCache()
cache_file = os.path.expanduser("~/.msal_llm_gateway_cache.json")
if os.path.exists(cache_file):
    with open(cache_file) as f:
        cache.deserialize(f.read())

app = msal.PublicClientApplication(
    CLIENT_ID,
    authority=AUTHORITY,
    token_cache=cache,
{discovery})

result = None
accounts = app.get_accounts()
if accounts:
    result = app.acquire_token_silent(SCOPES, account=accounts[0])
if not result:
    flow = app.initiate_device_flow(scopes=SCOPES)
    if "user_code" not in flow:
        sys.exit("could not start the device flow: " + json.dumps(flow))
    print(flow["message"], file=sys.stderr)
    result = app.acquire_token_by_device_flow(flow)
if cache.has_state_changed:
    with os.fdopen(os.open(cache_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(cache.serialize())
if "access_token" not in result:
    sys.exit("sign-in failed: " + result.get("error_description", json.dumps(result)))

response = requests.post(
    f"{{API_URL}}/deployments/{{DEPLOYMENT}}/chat/completions",
    params={{"api-version": API_VERSION}},
    headers={{"Authorization": "Bearer " + result["access_token"]}},
    json={{"messages": [{{"role": "user", "content": "hello"}}]}},
    timeout=60,
)
if response.status_code != 200:
    sys.exit(f"HTTP {{response.status_code}}: {{response.text}}")
print(response.json()["choices"][0]["message"]["content"])
"#,
        authority = literal(&inputs.authority),
        client_id = literal(&inputs.client_id),
        scope = literal(&inputs.scope),
        api_url = literal(&inputs.api_url),
        deployment = literal(&inputs.deployment),
        api_version = literal(CHAT_API_VERSION),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_as_python_strings() {
        let text = msal_python(&SnippetInputs {
            authority: "https://login.microsoftonline.com/t".into(),
            client_id: "c\"1".into(),
            scope: "api://a/llm.invoke".into(),
            api_url: "https://x.azure-api.net/llm".into(),
            deployment: "gpt-4o-mini".into(),
            sandbox: false,
        });
        assert!(text.contains("CLIENT_ID = \"c\\\"1\"\n"), "{text}");
        assert!(text.contains("SCOPES = [\"api://a/llm.invoke\"]\n"));
        assert!(!text.contains("instance_discovery"));
    }
}
