//! The one table of Azure clouds. No Azure host name is written anywhere else in the code, so that a
//! sovereign cloud or the local sandbox is a row here and not a search through the code base.

use serde::{Deserialize, Serialize};

/// The Azure cloud an environment lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Azure public cloud.
    Public,
    /// Azure Government (GCC High).
    Usgov,
    /// Azure operated by 21Vianet.
    China,
    /// The local emulator that ships with `provision`.
    Sandbox,
}

/// Endpoints of one cloud that the policy and the wire layer need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Entra ID authority host, without a trailing slash.
    pub login: String,
    /// Microsoft Graph host (the client adds `/v1.0`).
    pub graph: String,
    /// The resource Graph tokens are requested for. Not always the host: the sandbox serves Graph
    /// on loopback but, emulating the public cloud, accepts the public cloud's audience.
    pub graph_audience: String,
    /// Azure Resource Manager host.
    pub arm: String,
    /// The resource ARM tokens are requested for (same reason as `graph_audience`).
    pub arm_audience: String,
    /// The token resource that Azure AI Foundry / Azure OpenAI accept (`authentication-managed-identity`).
    pub cognitive_services_resource: String,
    /// The value of `authentication-endpoint` on `validate-azure-ad-token`, when the cloud needs one.
    /// The public cloud is APIM's default, so it renders nothing.
    pub apim_authentication_endpoint: Option<String>,
}

/// Where the sandbox listens when an environment does not say otherwise.
pub const DEFAULT_SANDBOX_ADDRESS: &str = "127.0.0.1:7171";

/// The sandbox's origin. A bare `host:port` is the plain-HTTP sandbox (environment files name
/// it so); a full `http://` or `https://` origin is taken as it is, because a `--tls` sandbox
/// issues its tokens as `https://host:port/{tenant}/…` (its issuer is its base URL, as Entra's
/// is its authority's) and a simulator that assumed `http://` would refuse every one of them.
pub fn sandbox_origin(address: &str) -> String {
    let address = address.trim_end_matches('/');
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl Cloud {
    /// Every cloud, in the order they are documented.
    pub const ALL: [Cloud; 4] = [Cloud::Public, Cloud::Usgov, Cloud::China, Cloud::Sandbox];

    /// The name used in environment files.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::Usgov => "usgov",
            Cloud::China => "china",
            Cloud::Sandbox => "sandbox",
        }
    }

    /// The endpoints of this cloud. `sandbox_address` is only read for [`Cloud::Sandbox`], whose
    /// surfaces all live on one loopback origin.
    pub fn endpoints(self, sandbox_address: &str) -> CloudEndpoints {
        let fixed =
            |login: &str, graph: &str, arm: &str, cog: &str, auth: Option<&str>| CloudEndpoints {
                login: login.to_owned(),
                graph: graph.to_owned(),
                graph_audience: graph.to_owned(),
                arm: arm.to_owned(),
                arm_audience: arm.to_owned(),
                cognitive_services_resource: cog.to_owned(),
                apim_authentication_endpoint: auth.map(str::to_owned),
            };
        match self {
            Cloud::Public => fixed(
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
                "https://management.azure.com",
                "https://cognitiveservices.azure.com",
                None,
            ),
            Cloud::Usgov => fixed(
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
                "https://management.usgovcloudapi.net",
                "https://cognitiveservices.azure.us",
                Some("https://login.microsoftonline.us"),
            ),
            Cloud::China => fixed(
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://management.chinacloudapi.cn",
                "https://cognitiveservices.azure.cn",
                Some("https://login.chinacloudapi.cn"),
            ),
            Cloud::Sandbox => {
                // The sandbox serves login, Graph and ARM from one origin; tokens for the model are
                // minted for the public cloud's resource so policies stay identical to production.
                let origin = sandbox_origin(sandbox_address);
                let public = Cloud::Public.endpoints("");
                CloudEndpoints {
                    login: origin.clone(),
                    graph: origin.clone(),
                    graph_audience: public.graph_audience,
                    arm: origin.clone(),
                    arm_audience: public.arm_audience,
                    cognitive_services_resource: "https://cognitiveservices.azure.com".to_owned(),
                    apim_authentication_endpoint: Some(origin),
                }
            }
        }
    }
}

impl CloudEndpoints {
    /// The scope that asks Entra for an ARM token (`<audience>/.default`).
    pub fn arm_scope(&self) -> String {
        format!("{}/.default", self.arm_audience.trim_end_matches('/'))
    }

    /// The scope that asks Entra for a Graph token.
    pub fn graph_scope(&self) -> String {
        format!("{}/.default", self.graph_audience.trim_end_matches('/'))
    }

    /// The Graph v1.0 base URL.
    pub fn graph_v1(&self) -> String {
        format!("{}/v1.0", self.graph.trim_end_matches('/'))
    }
}

/// The two issuer forms of Entra access tokens for one tenant: v1 (`ver: 1.0`) and v2 (`ver: 2.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuers {
    pub v1: String,
    pub v2: String,
}

impl Cloud {
    /// The issuers of tokens for `tenant` in this cloud (entra.md §4): v1 tokens come from the STS
    /// host, v2 tokens from the login host with a `/v2.0` suffix.
    pub fn issuers(self, sandbox_address: &str, tenant: &str) -> Issuers {
        let v1_host = match self {
            Cloud::Public | Cloud::Usgov => "https://sts.windows.net".to_owned(),
            Cloud::China => "https://sts.chinacloudapi.cn".to_owned(),
            Cloud::Sandbox => sandbox_origin(sandbox_address),
        };
        // The login host alone: building the whole endpoint table here cost a token check
        // about a tenth of its work outside the RSA verification (`cargo bench --bench policy`).
        let login = match self {
            Cloud::Sandbox => sandbox_origin(sandbox_address),
            Cloud::Public => "https://login.microsoftonline.com".to_owned(),
            Cloud::Usgov => "https://login.microsoftonline.us".to_owned(),
            Cloud::China => "https://login.chinacloudapi.cn".to_owned(),
        };
        debug_assert_eq!(login, self.endpoints(sandbox_address).login);
        Issuers {
            v1: format!("{v1_host}/{tenant}/"),
            v2: format!("{login}/{tenant}/v2.0"),
        }
    }

    /// The cloud whose Entra authority is `endpoint` (a policy's `authentication-endpoint`), and for
    /// the sandbox its address: `host:port` for plain HTTP, the whole `https://` origin for a
    /// `--tls` sandbox on loopback (any other `https://` authority is not a sandbox's).
    pub fn from_authority(endpoint: &str) -> Option<(Cloud, String)> {
        let endpoint = endpoint.trim_end_matches('/');
        for cloud in [Cloud::Public, Cloud::Usgov, Cloud::China] {
            if cloud.endpoints("").login.eq_ignore_ascii_case(endpoint) {
                return Some((cloud, DEFAULT_SANDBOX_ADDRESS.to_owned()));
            }
        }
        if let Some(address) = endpoint.strip_prefix("http://") {
            return Some((Cloud::Sandbox, address.to_owned()));
        }
        let host = endpoint.strip_prefix("https://")?;
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|h| host.eq_ignore_ascii_case(h))
            .then(|| (Cloud::Sandbox, endpoint.to_owned()))
    }
}

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_cloud_needs_no_authentication_endpoint() {
        let e = Cloud::Public.endpoints(DEFAULT_SANDBOX_ADDRESS);
        assert_eq!(e.apim_authentication_endpoint, None);
        assert_eq!(
            e.cognitive_services_resource,
            "https://cognitiveservices.azure.com"
        );
    }

    #[test]
    fn sovereign_clouds_pin_their_own_authority() {
        assert_eq!(
            Cloud::Usgov
                .endpoints("")
                .apim_authentication_endpoint
                .as_deref(),
            Some("https://login.microsoftonline.us")
        );
        assert_eq!(
            Cloud::China
                .endpoints("")
                .apim_authentication_endpoint
                .as_deref(),
            Some("https://login.chinacloudapi.cn")
        );
        assert_eq!(
            Cloud::China.endpoints("").cognitive_services_resource,
            "https://cognitiveservices.azure.cn"
        );
    }

    #[test]
    fn issuers_follow_the_token_version_and_cloud() {
        let t = "7e5a0000-0000-4000-8000-000000000a01";
        let public = Cloud::Public.issuers("", t);
        assert_eq!(public.v1, format!("https://sts.windows.net/{t}/"));
        assert_eq!(
            public.v2,
            format!("https://login.microsoftonline.com/{t}/v2.0")
        );
        assert_eq!(
            Cloud::China.issuers("", t).v1,
            format!("https://sts.chinacloudapi.cn/{t}/")
        );
        assert_eq!(
            Cloud::Sandbox.issuers("127.0.0.1:7171", t).v2,
            format!("http://127.0.0.1:7171/{t}/v2.0")
        );
    }

    #[test]
    fn authorities_map_back_to_clouds() {
        assert_eq!(
            Cloud::from_authority("https://login.microsoftonline.us/").map(|c| c.0),
            Some(Cloud::Usgov)
        );
        assert_eq!(
            Cloud::from_authority("http://127.0.0.1:9000"),
            Some((Cloud::Sandbox, "127.0.0.1:9000".to_owned()))
        );
        assert_eq!(Cloud::from_authority("https://example.com"), None);
        assert_eq!(Cloud::from_authority("https://example.com:8443"), None);
        assert_eq!(
            Cloud::from_authority("https://127.0.0.1:9443/"),
            Some((Cloud::Sandbox, "https://127.0.0.1:9443".to_owned()))
        );
    }

    #[test]
    fn a_tls_sandbox_issues_from_its_https_origin() {
        let t = "7e5a0000-0000-4000-8000-000000000a01";
        let issuers = Cloud::Sandbox.issuers("https://127.0.0.1:9443", t);
        assert_eq!(issuers.v1, format!("https://127.0.0.1:9443/{t}/"));
        assert_eq!(issuers.v2, format!("https://127.0.0.1:9443/{t}/v2.0"));
        assert_eq!(
            Cloud::Sandbox.endpoints("https://127.0.0.1:9443/").login,
            "https://127.0.0.1:9443"
        );
        assert_eq!(sandbox_origin("127.0.0.1:7171"), "http://127.0.0.1:7171");
    }

    #[test]
    fn sandbox_lives_on_its_loopback_origin_with_public_audiences() {
        let e = Cloud::Sandbox.endpoints("127.0.0.1:9000");
        assert_eq!(e.login, "http://127.0.0.1:9000");
        assert_eq!(e.arm, "http://127.0.0.1:9000");
        assert_eq!(e.graph_v1(), "http://127.0.0.1:9000/v1.0");
        assert_eq!(e.arm_scope(), "https://management.azure.com/.default");
        assert_eq!(e.graph_scope(), "https://graph.microsoft.com/.default");
    }

    #[test]
    fn every_cloud_row_is_complete_and_distinct() {
        let rows: Vec<(Cloud, CloudEndpoints)> = Cloud::ALL
            .iter()
            .map(|c| (*c, c.endpoints("127.0.0.1:1")))
            .collect();
        for (cloud, e) in &rows {
            for url in [
                &e.login,
                &e.graph,
                &e.arm,
                &e.graph_audience,
                &e.arm_audience,
            ] {
                let scheme = if *cloud == Cloud::Sandbox {
                    "http"
                } else {
                    "https://"
                };
                assert!(url.starts_with(scheme), "{cloud}: {url}");
                assert!(!url.ends_with('/'), "{cloud}: {url} has a trailing slash");
            }
        }
        let sovereign = |c: Cloud| c.endpoints("");
        assert_eq!(
            (
                sovereign(Cloud::Usgov).arm_scope(),
                sovereign(Cloud::Usgov).graph_scope(),
                sovereign(Cloud::China).arm_scope(),
                sovereign(Cloud::China).graph_scope(),
                sovereign(Cloud::Public).graph_v1(),
            ),
            (
                "https://management.usgovcloudapi.net/.default".to_owned(),
                "https://graph.microsoft.us/.default".to_owned(),
                "https://management.chinacloudapi.cn/.default".to_owned(),
                "https://microsoftgraph.chinacloudapi.cn/.default".to_owned(),
                "https://graph.microsoft.com/v1.0".to_owned(),
            )
        );
    }
}
