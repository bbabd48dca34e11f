//! The lint over a rendered policy: structure APIM enforces at PUT time (so a broken policy fails in
//! review, not in a deployment), plus the weak settings that quietly open the security boundary.

use serde::Serialize;

use super::document::{Document, Element, Position};
use crate::config::naming;
use crate::render::is_placeholder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One lint result, positioned in the rendered XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier for scripts and suppressions, e.g. `token-check-tenant`.
    pub rule: &'static str,
    pub line: usize,
    pub column: usize,
    /// The policy element the finding is about, used to map it back to a template line.
    pub element: Option<String>,
    pub message: String,
}

/// What the lint compares the policy against: the environment it was rendered for.
#[derive(Debug, Clone)]
pub struct LintContext<'a> {
    pub tenant_id: &'a str,
    /// The API app's id (the expected audience), or its placeholder.
    pub api_app_id: &'a str,
    /// Every client app id of the environment, or their placeholders.
    pub client_app_ids: &'a [String],
}

const SECTIONS: [&str; 4] = ["inbound", "backend", "outbound", "on-error"];
const TOKEN_CHECKS: [&str; 2] = ["validate-azure-ad-token", "validate-jwt"];
const TOKEN_LIMITS: [&str; 2] = ["llm-token-limit", "azure-openai-token-limit"];
const QUOTA_PERIODS: [&str; 6] = [
    "Hourly",
    "Daily",
    "Weekly",
    "Monthly",
    "Yearly",
    "Indefinite",
];

struct Lint<'a> {
    ctx: &'a LintContext<'a>,
    findings: Vec<Finding>,
}

impl Lint<'_> {
    fn push(
        &mut self,
        severity: Severity,
        rule: &'static str,
        at: Position,
        element: &str,
        message: String,
    ) {
        self.findings.push(Finding {
            severity,
            rule,
            line: at.line,
            column: at.column,
            element: Some(element.to_owned()),
            message,
        });
    }

    fn error(&mut self, rule: &'static str, e: &Element, message: String) {
        self.push(Severity::Error, rule, e.position, &e.name.clone(), message);
    }

    fn warning(&mut self, rule: &'static str, e: &Element, message: String) {
        self.push(
            Severity::Warning,
            rule,
            e.position,
            &e.name.clone(),
            message,
        );
    }

    fn attr_position(e: &Element, name: &str) -> Position {
        e.attribute(name).map_or(e.position, |a| a.position)
    }
}

fn is_expression(value: &str) -> bool {
    let v = value.trim_start();
    v.starts_with("@(") || v.starts_with("@{")
}

fn is_named_value(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("{{") && v.ends_with("}}")
}

/// Lints a policy text. A document that is not well-formed yields exactly one error.
pub fn lint(xml: &str, ctx: &LintContext<'_>) -> Vec<Finding> {
    let doc = match Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            return vec![Finding {
                severity: Severity::Error,
                rule: "well-formed",
                line: e.position.line,
                column: e.position.column,
                element: None,
                message: e.describe(),
            }];
        }
    };
    let mut lint = Lint {
        ctx,
        findings: Vec::new(),
    };
    lint.structure(&doc.root);
    lint.findings.sort_by_key(|f| (f.line, f.column));
    lint.findings
}

impl Lint<'_> {
    fn structure(&mut self, root: &Element) {
        if root.name != "policies" {
            self.error(
                "root",
                root,
                format!("the root element must be <policies>, not <{}>", root.name),
            );
            return;
        }
        let mut seen: Vec<&str> = Vec::new();
        for section in root.elements() {
            if !SECTIONS.contains(&section.name.as_str()) {
                self.error(
                    "sections",
                    section,
                    format!("<{}> is not a policy section; <policies> holds only inbound, backend, outbound and on-error", section.name),
                );
                continue;
            }
            if seen.contains(&section.name.as_str()) {
                self.error(
                    "sections",
                    section,
                    format!("section <{}> appears twice", section.name),
                );
            } else {
                // At most the four sections, so a repeated one is found without a scan per copy.
                seen.push(&section.name);
            }
            let bases: Vec<&Element> = section.elements().filter(|e| e.name == "base").collect();
            for extra in bases.iter().skip(1) {
                self.error(
                    "base",
                    extra,
                    format!("<base /> appears more than once in <{}>", section.name),
                );
            }
        }
        let mut token_checks = 0;
        for (section, element) in root.descendants() {
            match element.name.as_str() {
                name if TOKEN_CHECKS.contains(&name) => {
                    token_checks += 1;
                    if section != "inbound" {
                        self.error("token-check-section", element, format!("<{name}> is only allowed in the inbound section (found in <{section}>)"));
                    }
                    if name == "validate-azure-ad-token" {
                        self.azure_ad_token(element);
                    }
                }
                name if TOKEN_LIMITS.contains(&name) => self.token_limit(element),
                "set-backend-service"
                    if element.attr("base-url").is_none()
                        && element.attr("backend-id").is_none() =>
                {
                    self.error(
                        "required-attribute",
                        element,
                        "<set-backend-service> needs `backend-id` or `base-url`".to_owned(),
                    );
                }
                "authentication-managed-identity"
                    if element.attr("resource").is_none_or(|r| r.trim().is_empty()) =>
                {
                    self.error(
                        "required-attribute",
                        element,
                        "<authentication-managed-identity> needs `resource`".to_owned(),
                    );
                }
                "set-header" | "set-query-parameter" => {
                    let target = element.attr("name").unwrap_or("").to_ascii_lowercase();
                    if target == "api-key" {
                        self.warning(
                            "key-auth",
                            element,
                            format!("<{}> sets `{target}`: key-based backend auth bypasses Entra ID; use <authentication-managed-identity> and disable local auth on the account", element.name),
                        );
                    }
                }
                _ => {}
            }
        }
        if token_checks == 0 {
            let at = root.child("inbound").unwrap_or(root);
            self.error(
                "token-check-missing",
                at,
                "no <validate-azure-ad-token> in the policy: the API would accept calls without a token".to_owned(),
            );
        }
        if let Some(inbound) = root.child("inbound") {
            self.token_check_first(inbound);
        }
    }

    /// The token check must run before anything that spends tokens or reaches the backend.
    fn token_check_first(&mut self, inbound: &Element) {
        let first = inbound
            .elements()
            .find(|e| !matches!(e.name.as_str(), "base" | "cors"));
        if let Some(first) = first
            && !TOKEN_CHECKS.contains(&first.name.as_str())
            && inbound
                .elements()
                .any(|e| TOKEN_CHECKS.contains(&e.name.as_str()))
        {
            self.warning(
                    "token-check-first",
                    first,
                    format!("<{}> runs before the token check; put <validate-azure-ad-token> first after <base /> and <cors>", first.name),
                );
        }
    }

    fn azure_ad_token(&mut self, e: &Element) {
        match e.attr("tenant-id") {
            None => self.error(
                "token-check-tenant",
                e,
                "<validate-azure-ad-token> needs `tenant-id`".to_owned(),
            ),
            Some(tenant) => {
                let at = Self::attr_position(e, "tenant-id");
                let lower = tenant.trim().to_ascii_lowercase();
                let well_known = ["common", "organizations"]
                    .iter()
                    .any(|w| lower == *w || lower.ends_with(&format!("/{w}")));
                if well_known {
                    self.push(
                        Severity::Warning,
                        "token-check-tenant",
                        at,
                        &e.name,
                        format!("tenant-id `{tenant}` accepts tokens from any Entra tenant; pin your tenant's id"),
                    );
                } else if is_expression(tenant) || is_named_value(tenant) {
                    // Resolved by APIM at run time; nothing to compare offline.
                } else if naming::guid(tenant).is_ok() {
                    if !tenant.eq_ignore_ascii_case(self.ctx.tenant_id) {
                        self.push(
                            Severity::Error,
                            "token-check-tenant",
                            at,
                            &e.name,
                            format!(
                                "tenant-id `{tenant}` is not the environment's tenant `{}`",
                                self.ctx.tenant_id
                            ),
                        );
                    }
                } else if !tenant.contains('.') {
                    self.push(
                        Severity::Error,
                        "guid",
                        at,
                        &e.name,
                        format!("tenant-id `{tenant}` is neither a GUID nor a tenant domain"),
                    );
                }
            }
        }
        if let Some(code) = e.attr("failed-validation-httpcode")
            && !is_expression(code)
            && code.trim() != "401"
            && code.trim() != "403"
        {
            let at = Self::attr_position(e, "failed-validation-httpcode");
            self.push(
                    Severity::Warning,
                    "token-check-status",
                    at,
                    &e.name,
                    format!("failed-validation-httpcode `{code}`: clients and monitoring expect 401 (or 403) for a rejected token"),
                );
        }
        let clients = self.application_ids(e, "client-application-ids");
        if clients.is_empty() {
            self.error(
                "token-check-clients",
                e,
                "<validate-azure-ad-token> has no <client-application-ids>/<application-id>; APIM rejects the policy without one".to_owned(),
            );
        } else {
            for (value, element) in &clients {
                // Expressions and malformed ids were reported above; named values resolve in APIM.
                let comparable = naming::guid(value).is_ok() || is_placeholder(value);
                if comparable
                    && !self
                        .ctx
                        .client_app_ids
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(value))
                {
                    self.error(
                        "token-check-clients",
                        element,
                        format!("application-id `{value}` is not a client application of this environment"),
                    );
                }
            }
            for client in self.ctx.client_app_ids {
                if !clients.iter().any(|(v, _)| v.eq_ignore_ascii_case(client)) {
                    self.warning(
                        "token-check-clients",
                        e,
                        format!("client application `{client}` of this environment is not allowed by the policy"),
                    );
                }
            }
        }
        self.application_ids(e, "backend-application-ids");

        let audiences: Vec<&Element> = e
            .child("audiences")
            .map(|a| a.elements().filter(|x| x.name == "audience").collect())
            .unwrap_or_default();
        if audiences.is_empty() {
            self.warning(
                "token-check-audience",
                e,
                "no audience pinned: any token for a listed client passes, whatever API it was issued for; add <audiences><audience>".to_owned(),
            );
        } else if !audiences.iter().any(|a| {
            let v = a.text();
            v.eq_ignore_ascii_case(self.ctx.api_app_id)
                || v.eq_ignore_ascii_case(&format!("api://{}", self.ctx.api_app_id))
                || is_named_value(&v)
        }) {
            self.warning(
                "token-check-audience",
                audiences[0],
                format!(
                    "no audience is this environment's API app (`{}`)",
                    self.ctx.api_app_id
                ),
            );
        }
    }

    /// Checks an id list (no expressions, GUIDs) and returns its values.
    fn application_ids<'e>(&mut self, e: &'e Element, list: &str) -> Vec<(String, &'e Element)> {
        let mut values = Vec::new();
        let Some(list_element) = e.child(list) else {
            return values;
        };
        for id in list_element.elements() {
            if id.name != "application-id" {
                self.error(
                    "token-check-clients",
                    id,
                    format!(
                        "<{list}> holds only <application-id> elements, not <{}>",
                        id.name
                    ),
                );
                continue;
            }
            let value = id.text();
            if is_expression(&value) {
                self.error(
                    "no-expressions",
                    id,
                    format!("policy expressions are not allowed in <{list}> (APIM rejects them)"),
                );
            } else if !(is_placeholder(&value) || is_named_value(&value))
                && let Err(message) = naming::guid(&value)
            {
                self.error("guid", id, format!("application-id {message}"));
            }
            values.push((value, id));
        }
        values
    }

    fn token_limit(&mut self, e: &Element) {
        let name = e.name.clone();
        if e.attr("counter-key").is_none_or(|v| v.trim().is_empty()) {
            self.error(
                "required-attribute",
                e,
                format!("<{name}> needs `counter-key`"),
            );
        }
        let tpm = e.attr("tokens-per-minute");
        let quota = e.attr("token-quota");
        if tpm.is_none() && quota.is_none() {
            self.error(
                "required-attribute",
                e,
                format!(
                    "<{name}> needs `tokens-per-minute` or `token-quota` with `token-quota-period`"
                ),
            );
        }
        if quota.is_some() {
            match e.attr("token-quota-period") {
                None => self.error(
                    "required-attribute",
                    e,
                    format!("<{name}> with `token-quota` needs `token-quota-period`"),
                ),
                Some(p) if !is_expression(p) && !QUOTA_PERIODS.contains(&p) => self.error(
                    "required-attribute",
                    e,
                    format!(
                        "token-quota-period `{p}` is not one of {}",
                        QUOTA_PERIODS.join(", ")
                    ),
                ),
                Some(_) => {}
            }
        }
        for attr in ["tokens-per-minute", "token-quota"] {
            if let Some(v) = e.attr(attr)
                && !is_expression(v)
                && !is_named_value(v)
                && v.trim().parse::<u64>().is_err()
            {
                let at = Self::attr_position(e, attr);
                self.push(
                    Severity::Error,
                    "required-attribute",
                    at,
                    &name,
                    format!("`{attr}` must be a whole number, not `{v}`"),
                );
            }
        }
    }
}
