//! The Blueprint: an environment fully resolved and validated. Everything downstream (rendering,
//! planning, applying) takes a Blueprint and never looks at YAML again, so every rule about what a
//! valid environment is lives here, and all of its violations are reported together.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Node;
use serde::Serialize;

use super::checker::Checker;
use super::diagnostic::Location;
pub use super::foundry::{Deployment, DeploymentSku, Foundry, Model};
use super::limits;
use super::model::*;
use super::naming;
use super::tree::{self, KeyPath};
use crate::access::AuthChoice;
use crate::cloud::{Cloud, DEFAULT_SANDBOX_ADDRESS};

/// A GUID, validated and lower-cased, so comparisons with what Azure returns are exact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Guid(String);

impl Guid {
    pub fn parse(text: &str) -> Result<Guid, String> {
        naming::guid(text)?;
        Ok(Guid(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Blueprint {
    /// The environment's name (its file stem).
    pub env: String,
    /// The environment's own file, for messages.
    pub file: String,
    pub cloud: Cloud,
    /// Loopback `host:port` of the sandbox, or its whole `https://host:port` origin with
    /// `sandbox.tls: true` (what [`crate::cloud::sandbox_origin`] reads); only meaningful for
    /// `cloud: sandbox`.
    pub sandbox_address: String,
    /// The certificate a `--tls` sandbox serves, to trust explicitly (`sandbox.ca_file`): never
    /// by turning verification off.
    pub sandbox_ca_file: Option<std::path::PathBuf>,
    pub tenant_id: Guid,
    pub subscription_id: Guid,
    pub location: String,
    pub resource_group: String,
    pub tags: BTreeMap<String, String>,
    pub protected: bool,
    /// `lifetime:`: how long after `up` the environment expires.
    pub lifetime: Option<std::time::Duration>,
    /// The expiry `up` writes (RFC 3339), set by the command from `lifetime` (or `--ttl`) and
    /// the cloud's clock; kept as first written on resources that already carry one.
    pub expires: Option<String>,
    /// How to sign in unless `--auth` says otherwise: the file's `auth:`, else `sandbox` for the
    /// sandbox cloud and `auto` elsewhere.
    pub auth: AuthChoice,
    pub entra: Entra,
    pub foundry: Foundry,
    pub apim: Apim,
    pub api: Api,
    pub policy: PolicySpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entra {
    pub api: ApiApp,
    pub clients: Vec<ClientApp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiApp {
    pub unique_name: String,
    pub display_name: String,
    /// The delegated scope value clients request (`api://<appId>/<scope>`).
    pub scope: String,
    /// Pinned when the app already exists; otherwise learnt from Graph.
    pub app_id: Option<Guid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientApp {
    pub unique_name: String,
    pub display_name: String,
    pub redirect_uris: Vec<String>,
    pub app_id: Option<Guid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Apim {
    pub service: ApimService,
    pub backend_id: String,
    pub named_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ApimService {
    /// A gateway someone else runs; we only add our API to it.
    Existing {
        name: String,
        resource_group: String,
    },
    /// A gateway created for this environment (demo environments).
    Create {
        name: String,
        sku: String,
        capacity: u32,
        publisher_email: String,
        publisher_name: String,
    },
}

impl ApimService {
    pub fn name(&self) -> &str {
        match self {
            ApimService::Existing { name, .. } | ApimService::Create { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Api {
    pub id: String,
    pub path: String,
    pub display_name: String,
    pub subscription_required: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicySpec {
    /// Template name without extension, under `policies/` of the template directory.
    pub template: String,
    /// The environment's own template directory, relative to the working directory.
    pub templates_dir: Option<String>,
    pub vars: BTreeMap<String, PolicyValue>,
    /// Where each variable was written. Whether a variable is known, and of the right type, is
    /// decided by the template's declarations, which are read after loading; this lets that error
    /// still point at the file and line the user wrote, even through `extends:`.
    #[serde(skip)]
    pub var_sites: BTreeMap<String, VarSite>,
}

/// The key and the value of one `policy.vars` entry in its source file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarSite {
    pub key: Option<Location>,
    pub value: Option<Location>,
}

/// A typed template variable.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PolicyValue {
    Bool(bool),
    Integer(i64),
    Text(String),
    List(Vec<String>),
}

/// APIM tiers that can be created from a `create:` block.
const APIM_SKUS: [&str; 8] = [
    "Developer",
    "Basic",
    "Standard",
    "Premium",
    "Consumption",
    "BasicV2",
    "StandardV2",
    "PremiumV2",
];

impl Checker<'_> {
    fn guid(&mut self, path: &KeyPath, value: Option<String>) -> Option<Guid> {
        let value = self.required(value, path)?;
        self.optional_guid(path, Some(value))
    }

    fn optional_guid(&mut self, path: &KeyPath, value: Option<String>) -> Option<Guid> {
        match Guid::parse(&value?) {
            Ok(g) => Some(g),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    /// A plain scalar `true`/`false`/integer is typed; quoted scalars stay text.
    fn var(&self, path: &KeyPath, raw: RawVar) -> PolicyValue {
        match raw {
            RawVar::List(items) => PolicyValue::List(items),
            RawVar::Scalar(text) => {
                let plain =
                    matches!(tree::get(self.root, path), Some(Node::Scalar(s)) if s.may_coerce());
                match (plain, text.as_str()) {
                    (true, "true") => PolicyValue::Bool(true),
                    (true, "false") => PolicyValue::Bool(false),
                    (true, t) if t.parse::<i64>().is_ok() => {
                        PolicyValue::Integer(t.parse().unwrap_or_default())
                    }
                    _ => PolicyValue::Text(text),
                }
            }
        }
    }
}

/// `sandbox:`: the address (loopback only), and for a `--tls` sandbox its `https://` origin and
/// the certificate to trust. `tls` and `ca_file` come together: HTTPS without a trusted
/// certificate could only work by not verifying it, and a certificate for plain HTTP is a typo.
fn build_sandbox(
    c: &mut Checker<'_>,
    sandbox: Option<&RawSandbox>,
    cloud: Option<Cloud>,
) -> (String, Option<std::path::PathBuf>) {
    let root = KeyPath::default();
    let address = match (sandbox, cloud) {
        (Some(_), Some(cloud)) if cloud != Cloud::Sandbox => {
            c.error(
                &root.key("sandbox"),
                format!(
                    "`sandbox:` only applies to `cloud: sandbox` (this environment is `{cloud}`)"
                ),
            );
            DEFAULT_SANDBOX_ADDRESS.to_owned()
        }
        (
            Some(RawSandbox {
                address: Some(address),
                ..
            }),
            _,
        ) => {
            let here = root.key("sandbox").key("address");
            if !limits::length(c, &here, "the address", address, limits::TEXT) {
            } else if let Err(message) = naming::loopback_address(address) {
                c.error_hint(
                        &root.key("sandbox").key("address"),
                        message,
                        "the sandbox holds test credentials and listens on loopback only, e.g. 127.0.0.1:7171",
                    );
            }
            address.clone()
        }
        _ => DEFAULT_SANDBOX_ADDRESS.to_owned(),
    };
    let Some(sandbox) = sandbox.filter(|_| cloud == Some(Cloud::Sandbox)) else {
        return (address, None);
    };
    match (sandbox.tls.unwrap_or(false), &sandbox.ca_file) {
        (true, Some(ca)) => {
            let here = root.key("sandbox").key("ca_file");
            limits::length(c, &here, "the path", ca, limits::TEXT);
            (
                format!("https://{address}"),
                Some(std::path::PathBuf::from(ca)),
            )
        }
        (true, None) => {
            c.error_hint(
                &root.key("sandbox").key("tls"),
                "`tls: true` needs `ca_file:`, the certificate the sandbox serves".to_owned(),
                "add `ca_file: DIR/sandbox-cert.pem`, where DIR is the sandbox's `--state` \
                 directory (or save the `tls.ca_pem` of its /_sandbox/info)",
            );
            (address, None)
        }
        (false, Some(_)) => {
            c.error_hint(
                &root.key("sandbox").key("ca_file"),
                "`ca_file:` applies to a sandbox that serves HTTPS".to_owned(),
                "add `tls: true` for a sandbox started with `provision sandbox serve --tls`, or \
                 remove `ca_file:`",
            );
            (address, None)
        }
        (false, None) => (address, None),
    }
}

/// Validates a deserialised environment into a Blueprint, or returns every problem found.
pub(super) fn build(env: &str, raw: RawEnvironment, c: &mut Checker<'_>) -> Option<Blueprint> {
    let root = KeyPath::default();
    let cloud = c.required(raw.cloud, &root.key("cloud"));
    let tenant_id = c.guid(&root.key("tenant_id"), raw.tenant_id);
    let subscription_id = c.guid(&root.key("subscription_id"), raw.subscription_id);
    let location = c.required(raw.location, &root.key("location"));
    if let Some(l) = &location
        && limits::length(c, &root.key("location"), "the region name", l, limits::TEXT)
    {
        c.rule(&root.key("location"), naming::location(l));
    }
    let resource_group = c.required(raw.resource_group, &root.key("resource_group"));
    if let Some(rg) = &resource_group {
        c.rule(&root.key("resource_group"), naming::resource_group(rg));
    }
    limits::tags(c, &raw.tags);

    let (sandbox_address, sandbox_ca_file) = build_sandbox(c, raw.sandbox.as_ref(), cloud);

    let auth = cloud.map(|cloud| {
        let auth = raw.auth.unwrap_or(default_auth(cloud));
        if let Err((message, hint)) = auth_fits_cloud(auth, cloud) {
            c.error_hint(&root.key("auth"), message, hint);
        }
        auth
    });

    let lifetime = raw.lifetime.as_ref().and_then(|text| {
        let key = root.key("lifetime");
        match crate::clock::parse_duration(text) {
            Ok(d) if d.is_zero() => {
                c.error_hint(&key, "a lifetime of zero", "give e.g. 8h or 2d");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                c.error_hint(&key, e, "give e.g. 8h or 2d");
                None
            }
        }
    });
    if lifetime.is_some() && raw.protected == Some(true) {
        c.error_hint(
            &root.key("lifetime"),
            "a protected environment never expires",
            "remove `lifetime:`, or `protected: true` for a demo environment",
        );
    }

    let entra = build_entra(c, raw.entra);
    let foundry = super::foundry::build(c, raw.foundry);
    let apim = build_apim(c, raw.apim);
    let api = build_api(c, raw.api);
    let policy = build_policy(c, raw.policy);

    Some(Blueprint {
        env: env.to_owned(),
        file: c.leaf_file.to_owned(),
        cloud: cloud?,
        sandbox_address,
        sandbox_ca_file,
        tenant_id: tenant_id?,
        subscription_id: subscription_id?,
        location: location?,
        resource_group: resource_group?,
        tags: raw.tags,
        protected: raw.protected.unwrap_or(false),
        lifetime,
        expires: None,
        auth: auth?,
        entra: entra?,
        foundry: foundry?,
        apim: apim?,
        api: api?,
        policy: policy?,
    })
}

/// The sign-in method an environment uses when neither its file nor `--auth` names one.
pub fn default_auth(cloud: Cloud) -> AuthChoice {
    match cloud {
        Cloud::Sandbox => AuthChoice::Sandbox,
        Cloud::Public | Cloud::Usgov | Cloud::China => AuthChoice::Auto,
    }
}

/// The sandbox signs in only its own operator, and its operator signs in nowhere else.
pub fn auth_fits_cloud(auth: AuthChoice, cloud: Cloud) -> Result<(), (String, &'static str)> {
    match (auth, cloud) {
        (AuthChoice::Sandbox, Cloud::Sandbox) => Ok(()),
        (AuthChoice::Sandbox, cloud) => Err((
            format!(
                "`sandbox` signs in to the local sandbox only, and this environment is `cloud: {cloud}`"
            ),
            "use `auto` (or leave `auth:` out), or one of cli, workload-identity, managed-identity, client-secret, github-oidc",
        )),
        // A pipeline signs in to the sandbox as it would to Azure: with its CI's token, which
        // the sandbox's own GitHub Actions and Azure DevOps issuers hand out.
        (AuthChoice::GithubOidc | AuthChoice::WorkloadIdentity, Cloud::Sandbox) => Ok(()),
        (other, Cloud::Sandbox) => Err((
            format!("`{other}` can not sign in to the sandbox (`cloud: sandbox`)"),
            "leave `auth:` out, or use `auth: sandbox`: the sandbox issues tokens to its own operator",
        )),
        _ => Ok(()),
    }
}

fn build_entra(c: &mut Checker<'_>, raw: Option<RawEntra>) -> Option<Entra> {
    let path = KeyPath::default().key("entra");
    let raw = c.required(raw, &path)?;
    let api = build_api_app(c, &path.key("api"), raw.api);
    let clients_path = path.key("clients");
    let mut clients_raw = c.required(raw.clients, &clients_path).unwrap_or_default();
    if !limits::count(
        c,
        &clients_path,
        "client applications",
        clients_raw.len(),
        limits::CLIENTS,
    ) {
        clients_raw.clear();
    }
    if clients_raw.is_empty() && tree::get(c.root, &clients_path).is_some() {
        c.error_hint(
            &clients_path,
            "at least one client application is required",
            "the policy pins client application ids, and APIM rejects validate-azure-ad-token without one",
        );
    }
    let mut clients = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(api) = &api {
        seen.insert(api.unique_name.clone());
    }
    for (i, client) in clients_raw.into_iter().enumerate() {
        let here = clients_path.index(i);
        let unique_name = c.required(client.unique_name, &here.key("unique_name"));
        if let Some(name) = &unique_name
            && c.rule(&here.key("unique_name"), naming::unique_name(name))
            && !seen.insert(name.clone())
        {
            c.error(
                &here.key("unique_name"),
                format!("uniqueName `{name}` is used twice; every app registration needs its own"),
            );
        }
        let redirect_uris = client
            .redirect_uris
            .unwrap_or_else(|| vec!["http://localhost".to_owned()]);
        let uris_path = here.key("redirect_uris");
        let n = redirect_uris.len();
        if limits::count(c, &uris_path, "redirect URIs", n, limits::REDIRECT_URIS) {
            for (j, uri) in redirect_uris.iter().enumerate() {
                let at = uris_path.index(j);
                if limits::length(c, &at, "a redirect URI", uri, limits::REDIRECT_URI) {
                    c.rule(&at, naming::redirect_uri(uri));
                }
            }
        }
        if let Some(name) = &client.display_name {
            let at = here.key("display_name");
            limits::length(c, &at, "the display name", name, limits::APP_DISPLAY_NAME);
        }
        let app_id = c.optional_guid(&here.key("app_id"), client.app_id);
        if let Some(unique_name) = unique_name {
            clients.push(ClientApp {
                display_name: client.display_name.unwrap_or_else(|| unique_name.clone()),
                unique_name,
                redirect_uris,
                app_id,
            });
        }
    }
    Some(Entra { api: api?, clients })
}

fn build_api_app(c: &mut Checker<'_>, path: &KeyPath, raw: Option<RawApiApp>) -> Option<ApiApp> {
    let raw = c.required(raw, path)?;
    let unique_name = c.required(raw.unique_name, &path.key("unique_name"));
    if let Some(name) = &unique_name {
        c.rule(&path.key("unique_name"), naming::unique_name(name));
    }
    if let Some(name) = &raw.display_name {
        let at = path.key("display_name");
        limits::length(c, &at, "the display name", name, limits::APP_DISPLAY_NAME);
    }
    let scope = raw.scope.unwrap_or_else(|| "llm.invoke".to_owned());
    c.rule(&path.key("scope"), naming::scope_value(&scope));
    let app_id = c.optional_guid(&path.key("app_id"), raw.app_id);
    let unique_name = unique_name?;
    Some(ApiApp {
        display_name: raw.display_name.unwrap_or_else(|| unique_name.clone()),
        unique_name,
        scope,
        app_id,
    })
}

fn build_apim(c: &mut Checker<'_>, raw: Option<RawApim>) -> Option<Apim> {
    let path = KeyPath::default().key("apim");
    let raw = c.required(raw, &path)?;
    let service = match (raw.existing, raw.create) {
        (Some(_), Some(_)) => {
            c.error_hint(&path.key("create"), "`existing` and `create` are mutually exclusive", "use `existing:` for a shared gateway, `create:` for a gateway owned by this environment");
            None
        }
        (None, None) => {
            c.error_hint(&path, "missing `existing` or `create`", "name an existing API Management service, or add a `create:` block for a demo environment");
            None
        }
        (Some(e), None) => {
            let here = path.key("existing");
            let name = c.required(e.name, &here.key("name"));
            if let Some(n) = &name {
                c.rule(&here.key("name"), naming::apim_service(n));
            }
            let resource_group = c.required(e.resource_group, &here.key("resource_group"));
            if let Some(rg) = &resource_group {
                c.rule(&here.key("resource_group"), naming::resource_group(rg));
            }
            Some(ApimService::Existing {
                name: name?,
                resource_group: resource_group?,
            })
        }
        (None, Some(create)) => {
            let here = path.key("create");
            let name = c.required(create.name, &here.key("name"));
            if let Some(n) = &name {
                c.rule(&here.key("name"), naming::apim_service(n));
            }
            let sku = create.sku.unwrap_or_else(|| "Developer".to_owned());
            if !APIM_SKUS.contains(&sku.as_str()) {
                c.error(
                    &here.key("sku"),
                    format!(
                        "unknown API Management tier `{sku}`; one of {}",
                        APIM_SKUS.join(", ")
                    ),
                );
            }
            let default_capacity = if sku == "Consumption" { 0 } else { 1 };
            let capacity = match u32::try_from(create.capacity.unwrap_or(default_capacity)) {
                Ok(n) => Some(n),
                Err(_) => {
                    c.error(&here.key("capacity"), "expected a non-negative integer");
                    None
                }
            };
            let email = c.required(create.publisher_email, &here.key("publisher_email"));
            if let Some(name) = &create.publisher_name {
                let at = here.key("publisher_name");
                limits::length(c, &at, "the publisher name", name, limits::TEXT);
            }
            if let Some(e) = &email
                && limits::length(
                    c,
                    &here.key("publisher_email"),
                    "the e-mail address",
                    e,
                    limits::TEXT,
                )
                && (!e.contains('@') || e.starts_with('@') || e.ends_with('@'))
            {
                c.error(
                    &here.key("publisher_email"),
                    format!("`{e}` is not an e-mail address"),
                );
            }
            let publisher_name = create
                .publisher_name
                .unwrap_or_else(|| "provision".to_owned());
            Some(ApimService::Create {
                name: name?,
                sku,
                capacity: capacity?,
                publisher_email: email?,
                publisher_name,
            })
        }
    };
    let backend_id = raw.backend_id.unwrap_or_else(|| "foundry".to_owned());
    c.rule(
        &path.key("backend_id"),
        naming::apim_id("backend id", &backend_id, 80),
    );
    let n = raw.named_values.len();
    let named_values_path = path.key("named_values");
    let named_values_fit = limits::count(
        c,
        &named_values_path,
        "named values",
        n,
        limits::NAMED_VALUES,
    );
    for (name, value) in raw.named_values.iter().filter(|_| named_values_fit) {
        let here = named_values_path.key(name);
        c.rule(&here, naming::named_value(name));
        if value.trim().is_empty() || value.len() > 4096 {
            c.error(
                &here,
                "named value must be non-blank and at most 4096 characters",
            );
        }
    }
    Some(Apim {
        service: service?,
        backend_id,
        named_values: raw.named_values,
    })
}

fn build_api(c: &mut Checker<'_>, raw: Option<RawApi>) -> Option<Api> {
    let path = KeyPath::default().key("api");
    let raw = c.required(raw, &path)?;
    let id = c.required(raw.id, &path.key("id"));
    if let Some(id) = &id {
        c.rule(&path.key("id"), naming::apim_id("API id", id, 256));
    }
    let api_path = c.required(raw.path, &path.key("path"));
    if let Some(p) = &api_path {
        c.rule(&path.key("path"), naming::apim_path(p));
    }
    if let Some(name) = &raw.display_name {
        let at = path.key("display_name");
        limits::length(c, &at, "the display name", name, limits::API_DISPLAY_NAME);
    }
    let id = id?;
    Some(Api {
        display_name: raw.display_name.unwrap_or_else(|| id.clone()),
        id,
        path: api_path?,
        subscription_required: raw.subscription_required.unwrap_or(false),
    })
}

fn build_policy(c: &mut Checker<'_>, raw: Option<RawPolicy>) -> Option<PolicySpec> {
    let path = KeyPath::default().key("policy");
    let raw = raw.unwrap_or(RawPolicy {
        template: None,
        templates_dir: None,
        vars: BTreeMap::new(),
    });
    let template = raw.template.unwrap_or_else(|| "llm-api".to_owned());
    if !limits::length(
        c,
        &path.key("template"),
        "the template name",
        &template,
        limits::TEXT,
    ) {
    } else if template.is_empty() || template.contains(['/', '\\']) || template.starts_with('.') {
        c.error(&path.key("template"), format!("template name `{template}` must be a plain name (it is looked up as policies/<name>.xml.tera)"));
    }
    if let Some(dir) = &raw.templates_dir {
        let here = path.key("templates_dir");
        let hint = "`templates_dir` is a directory inside the project, relative to it, e.g. templates/prod";
        let ok = limits::length(c, &here, "the directory", dir, limits::TEMPLATES_DIR);
        if let Err(message) =
            naming::project_dir(dir).and_then(|()| if ok { (c.confine)(dir) } else { Ok(()) })
        {
            c.error_hint(&here, message, hint);
        }
    }
    let mut vars = BTreeMap::new();
    let vars_path = path.key("vars");
    if !limits::count(
        c,
        &vars_path,
        "template variables",
        raw.vars.len(),
        limits::VARS,
    ) {
        return None;
    }
    let mut var_sites = BTreeMap::new();
    for (name, value) in raw.vars {
        let here = vars_path.key(&name);
        if !limits::length(c, &here, "the variable name", &name, limits::VAR_NAME)
            || !limits::var(c, &here, &value)
        {
            continue;
        }
        let identifier = name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !identifier {
            c.error_hint(
                &here,
                format!("`{name}` cannot be used in a template"),
                "template variable names are letters, digits and `_` (e.g. tokens_per_minute)",
            );
            continue;
        }
        let typed = c.var(&here, value);
        let site = VarSite {
            key: c.sources.location(tree::locate(c.root, &here)),
            value: c
                .sources
                .location(tree::get(c.root, &here).and_then(|n| n.span().start())),
        };
        var_sites.insert(name.clone(), site);
        vars.insert(name, typed);
    }
    Some(PolicySpec {
        template,
        templates_dir: raw.templates_dir,
        vars,
        var_sites,
    })
}
