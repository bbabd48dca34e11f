//! Azure's naming rules, checked before anything is sent, so a bad name fails in a pull request and
//! not halfway through a deployment. Sources: apim.md §3.2 (APIM ids), foundry-arm.md §1.2
//! (Cognitive Services accounts and deployments), entra.md §1.2 (scope values).

/// A rule violation, phrased to follow "<key path>: ".
pub type RuleResult = Result<(), String>;

/// A GUID in the 8-4-4-4-12 hex form that Azure and Entra use. Braces and URN forms are rejected
/// because Azure rejects them in tenant and subscription ids.
pub fn guid(value: &str) -> RuleResult {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        ))
    }
}

fn length(what: &str, value: &str, min: usize, max: usize) -> RuleResult {
    let n = value.chars().count();
    if n < min || n > max {
        // A runaway value is shown by its start only.
        let shown: String = value.chars().take(40).collect();
        let ellipsis = if n > 40 { "…" } else { "" };
        return Err(format!(
            "{what} `{shown}{ellipsis}` must be {min}-{max} characters long (it has {n})"
        ));
    }
    Ok(())
}

/// Resource group: 1-90 characters; letters, digits, `_`, `(`, `)`, `-`, `.`; not ending in `.`.
pub fn resource_group(value: &str) -> RuleResult {
    length("resource group name", value, 1, 90)?;
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_alphanumeric() || "_()-.".contains(*c)))
    {
        return Err(format!(
            "resource group name `{value}` contains `{c}`; allowed are letters, digits, `_`, `(`, `)`, `-` and `.`"
        ));
    }
    if value.ends_with('.') {
        return Err(format!(
            "resource group name `{value}` must not end with `.`"
        ));
    }
    Ok(())
}

/// Cognitive Services account (and deployment): 2-64 characters, `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`.
pub fn cognitive_name(what: &str, value: &str) -> RuleResult {
    length(what, value, 2, 64)?;
    let mut chars = value.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !(first_ok && rest_ok) {
        return Err(format!(
            "{what} `{value}` must start with a letter or digit and contain only letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

/// The account name doubles as its custom subdomain (needed for Entra ID auth), which is a DNS label.
pub fn custom_subdomain(value: &str) -> RuleResult {
    let label_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !label_ok {
        return Err(format!(
            "account name `{value}` is also its custom subdomain, a DNS label: only letters, digits and inner `-`"
        ));
    }
    Ok(())
}

/// APIM service name: 1-50, `^[a-zA-Z](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$`.
pub fn apim_service(value: &str) -> RuleResult {
    length("API Management service name", value, 1, 50)?;
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    let chars_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !(first_ok && chars_ok && !value.ends_with('-')) {
        return Err(format!(
            "API Management service name `{value}` must start with a letter, contain only letters, digits and `-`, and not end with `-`"
        ));
    }
    Ok(())
}

/// APIM entity ids (API id, named value id): `^[^*#&+:<>?]+$` with a maximum length.
pub fn apim_id(what: &str, value: &str, max: usize) -> RuleResult {
    length(what, value, 1, max)?;
    if let Some(c) = value
        .chars()
        .find(|c| "*#&+:<>?".contains(*c) || c.is_whitespace() || *c == '/')
    {
        return Err(format!(
            "{what} `{value}` must not contain `{c}` (forbidden: * # & + : < > ? / and spaces)"
        ));
    }
    Ok(())
}

/// APIM API path: the spec allows up to 400 characters (`ApiContractProperties.path`, maxLength
/// 400, apimapis.json 2024-05-01), a relative URL suffix of the gateway URL. Segments are limited
/// to RFC 3986 unreserved characters, and `.` and `..` segments are refused: clients and proxies
/// normalise them away, so `../../admin` would publish the API somewhere else than it says.
pub fn apim_path(value: &str) -> RuleResult {
    length("API path", value, 1, 400)?;
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || "?#\\".contains(*c))
    {
        return Err(format!(
            "API path `{value}` must not contain `{}`",
            c.escape_default()
        ));
    }
    if value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        return Err(format!(
            "API path `{value}` is relative to the gateway URL: no leading, trailing or doubled `/`"
        ));
    }
    if value.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "API path `{value}` must not contain `.` or `..` segments"
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/".contains(*c)))
    {
        return Err(format!(
            "API path `{value}` contains `{c}`; use letters, digits, `-`, `.`, `_`, `~` and `/`"
        ));
    }
    Ok(())
}

/// APIM named value display name (what `{{name}}` references): 1-256, `^[A-Za-z0-9-._]+$`.
pub fn named_value(value: &str) -> RuleResult {
    length("named value name", value, 1, 256)?;
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c)))
    {
        return Err(format!(
            "named value name `{value}` contains `{c}`; allowed are letters, digits, `-`, `.` and `_`"
        ));
    }
    Ok(())
}

/// A delegated scope value: it goes into the `scp` claim; at most 120 characters, no spaces.
pub fn scope_value(value: &str) -> RuleResult {
    length("scope", value, 1, 120)?;
    if value.chars().any(char::is_whitespace) {
        return Err(format!("scope `{value}` must not contain spaces"));
    }
    Ok(())
}

/// A Graph `uniqueName`: an alternate key embedded in URLs as `(uniqueName='…')`.
pub fn unique_name(value: &str) -> RuleResult {
    length("uniqueName", value, 1, 255)?;
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "'/?#%\\".contains(*c))
    {
        return Err(format!(
            "uniqueName `{value}` must not contain `{}` (it is used as a key in Graph URLs)",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Azure region names as ARM spells them: lower-case letters and digits.
pub fn location(value: &str) -> RuleResult {
    if value.is_empty()
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "`{value}` is not an Azure region name (e.g. `swedencentral`, `eastus2`)"
        ));
    }
    Ok(())
}

/// The sandbox address: `host:port` on a loopback interface.
pub fn loopback_address(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` is not host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("`{port}` in `{address}` is not a port number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!("`{host}` is not a loopback address"))
    }
}

/// Public clients may redirect to loopback over http; anything else must be https or a custom scheme.
pub fn redirect_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!("redirect URI `{uri}` is not an absolute URI"));
    };
    if scheme.eq_ignore_ascii_case("http") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if !(host == "localhost" || host == "127.0.0.1") {
            return Err(format!(
                "redirect URI `{uri}` uses http for a non-loopback host; use https"
            ));
        }
    }
    Ok(())
}

/// A directory named in an environment (`policy.templates_dir`): relative to the project and
/// inside it. An absolute path or a `..` would let an environment file read templates from
/// anywhere on the machine (`templates_dir: /` walks the whole file system).
pub fn project_dir(value: &str) -> RuleResult {
    let absolute = value.starts_with(['/', '\\'])
        || value.as_bytes().get(1) == Some(&b':')
        || value.starts_with('~');
    if value.trim().is_empty() || absolute {
        return Err(format!("`{value}` is not a relative path"));
    }
    if value.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!("`{value}` leaves the project directory (`..`)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids() {
        assert!(guid("0fa1c2d3-0000-4000-8000-00000000a001").is_ok());
        assert!(guid("0FA1C2D3-0000-4000-8000-00000000A001").is_ok());
        assert!(guid("{0fa1c2d3-0000-4000-8000-00000000a001}").is_err());
        assert!(guid("0fa1c2d3000040008000000000000a001").is_err());
        assert!(guid("0fa1c2d3-0000-4000-8000-00000000a0g1").is_err());
        assert!(guid("").is_err());
    }

    #[test]
    fn cognitive_accounts() {
        assert!(cognitive_name("account", "ai-gw-prod").is_ok());
        assert!(cognitive_name("account", "a").is_err());
        assert!(cognitive_name("account", "-lead").is_err());
        assert!(cognitive_name("account", &"a".repeat(65)).is_err());
        assert!(custom_subdomain("ai.gw").is_err());
        assert!(custom_subdomain("ai-gw").is_ok());
    }

    #[test]
    fn apim_rules() {
        assert!(apim_service("apim-llm-1").is_ok());
        assert!(apim_service("1apim").is_err());
        assert!(apim_service("apim-").is_err());
        assert!(apim_id("API id", "llm", 256).is_ok());
        assert!(apim_id("API id", "llm#1", 256).is_err());
        assert!(apim_path("openai").is_ok());
        assert!(apim_path("llm/v1").is_ok());
        assert!(apim_path("/openai").is_err());
        assert!(named_value("entra-tenant-id").is_ok());
        assert!(named_value("tenant id").is_err());
    }

    #[test]
    fn resource_groups() {
        assert!(resource_group("rg-llm_gw(prod)").is_ok());
        assert!(resource_group("rg.").is_err());
        assert!(resource_group("rg/x").is_err());
        assert!(resource_group(&"r".repeat(91)).is_err());
    }
}
