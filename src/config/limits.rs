//! How many and how long: a bound for every list and string of an environment, so that `validate`
//! refuses what Azure or Entra would refuse halfway through `up`, and nothing in a file can make
//! `provision` do unbounded work. Where Azure or Entra documents a limit, it is theirs (cited);
//! elsewhere it is ours, far above any real environment.

use std::collections::BTreeMap;

use super::checker::Checker;
use super::model::RawVar;
use super::tree::KeyPath;

/// ARM: "Each resource, resource group, and subscription can have a maximum of 50 tag name-value
/// pairs"; tag names at most 512 characters, values at most 256, and names may not contain
/// `< > % & \ ? /` (learn.microsoft.com/azure/azure-resource-manager/management/tag-resources,
/// "Limitations"). Storage accounts allow 128-character names only; provision tags none.
pub const TAGS: usize = 50;
pub const TAG_NAME: usize = 512;
pub const TAG_VALUE: usize = 256;

/// Entra: a redirect URI is at most 256 characters, and an app signing in work or school accounts
/// has at most 256 of them (learn.microsoft.com/entra/identity-platform/reply-url, "Maximum number
/// of redirect URIs" and "Maximum URI length").
pub const REDIRECT_URIS: usize = 256;
pub const REDIRECT_URI: usize = 256;

/// Microsoft Graph `application.displayName`: "Maximum length is 256 characters"
/// (learn.microsoft.com/graph/api/resources/application, Properties).
pub const APP_DISPLAY_NAME: usize = 256;

/// APIM `ApiContractProperties.displayName`: 1-300 characters (ARM spec apimapis.json, 2024-05-01).
pub const API_DISPLAY_NAME: usize = 300;

/// Azure OpenAI: "Max Standard deployments per resource: 32"
/// (learn.microsoft.com/azure/ai-foundry/openai/quotas-limits).
pub const DEPLOYMENTS: usize = 32;

/// APIM: "Maximum number of named values per service instance: 100" in the Basic v2 and Standard
/// v2 tiers (learn.microsoft.com/azure/azure-resource-manager/management/azure-subscription-service-limits,
/// API Management v2 tiers); the gateway may be shared, so this environment's own stay below it.
pub const NAMED_VALUES: usize = 100;

/// Ours: client applications of one API. Each is an app registration and an entry in the policy's
/// `client-application-ids`; real gateways have a handful.
pub const CLIENTS: usize = 100;

/// Ours: template variables, the length of their names, of a text value and of a list.
pub const VARS: usize = 256;
pub const VAR_NAME: usize = 128;
pub const VAR_TEXT: usize = 4096;
pub const VAR_LIST: usize = 256;

/// Ours: any other free text (model names and versions, SKUs, the publisher, paths).
pub const TEXT: usize = 256;

/// Ours: the template directory's path.
pub const TEMPLATES_DIR: usize = 1024;

/// Tags this tool sets itself to find what it manages; users may not set them.
pub const RESERVED_TAGS: [&str; 2] = ["managed-by", "provision-env"];

/// Refuses a list longer than `max`, naming the limit and where it comes from.
pub fn count(c: &mut Checker<'_>, path: &KeyPath, what: &str, n: usize, max: usize) -> bool {
    if n <= max {
        return true;
    }
    c.error_hint(
        path,
        format!("{n} {what}; at most {max} are allowed"),
        format!("remove {}", n - max),
    );
    false
}

/// Refuses a text longer than `max` characters. The message shows the length, not the text: a
/// megabyte-long value would drown the message.
pub fn length(c: &mut Checker<'_>, path: &KeyPath, what: &str, value: &str, max: usize) -> bool {
    let n = value.chars().count();
    if n <= max {
        return true;
    }
    c.error(
        path,
        format!("{what} is {n} characters long; at most {max} are allowed"),
    );
    false
}

/// A template variable: a text value, or a list of them, each within its bound.
pub fn var(c: &mut Checker<'_>, path: &KeyPath, value: &RawVar) -> bool {
    match value {
        RawVar::Scalar(text) => length(c, path, "the value", text, VAR_TEXT),
        RawVar::List(items) => {
            count(c, path, "list items", items.len(), VAR_LIST)
                && items
                    .iter()
                    .enumerate()
                    .all(|(i, item)| length(c, &path.index(i), "the item", item, VAR_TEXT))
        }
    }
}

/// Tags: ARM's count, length and character rules, and the names provision keeps for itself.
pub fn tags(c: &mut Checker<'_>, tags: &BTreeMap<String, String>) {
    let path = KeyPath::default().key("tags");
    if !count(c, &path, "tags", tags.len(), TAGS) {
        return;
    }
    for (key, value) in tags {
        let here = path.key(key);
        if RESERVED_TAGS.contains(&key.to_ascii_lowercase().as_str()) {
            c.error_hint(&here, format!("tag `{key}` is reserved"), "provision sets `managed-by` and `provision-env` itself to find what it manages; remove it");
        } else if key.is_empty()
            || key.chars().count() > TAG_NAME
            || key.contains(['<', '>', '%', '&', '\\', '?', '/'])
        {
            c.error(
                &here,
                "tag names are 1-512 characters without < > % & \\ ? /",
            );
        } else if value.chars().count() > TAG_VALUE {
            c.error(&here, "tag values are at most 256 characters");
        }
    }
}
