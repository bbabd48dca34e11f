//! Files the user names on the command line for the policy engine (policies, JWKS, tokens) and
//! saved plans: read within their limits, so a huge or binary input is refused promptly, and
//! every error located at `file:line:col`.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use crate::engine::saved::{MAX_PLAN_BYTES, SavedPlan};
use crate::hint::{Hinted, Remedy};
use crate::policy::model::PolicyDocument;
use crate::policy::token::{KeySet, MAX_JWKS_BYTES};
use crate::policy::{Document, MAX_POLICY_BYTES, ParseError, check_size};

/// More than any token file needs: a token over [`crate::policy::token::MAX_TOKEN_BYTES`] is
/// still read, to be refused by the policy as malformed, with room for surrounding whitespace.
const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

/// A policy file parsed into the model, with file:line:col on every error.
pub fn load_policy(path: &Path) -> anyhow::Result<(Document, PolicyDocument)> {
    let text = read_policy(path)?;
    parse_policy(&path.display().to_string(), &text)
}

/// A policy file parsed as XML.
pub fn policy_document(path: &Path) -> anyhow::Result<Document> {
    let text = read_policy(path)?;
    Document::parse(&text).map_err(|e| xml_error(&path.display().to_string(), &e))
}

/// Policy text (named `name` in errors) parsed into the model.
pub fn parse_policy(name: &str, text: &str) -> anyhow::Result<(Document, PolicyDocument)> {
    let doc = Document::parse(text).map_err(|e| xml_error(name, &e))?;
    let model = PolicyDocument::from_document(&doc).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("{name}:{e}")).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    Ok((doc, model))
}

pub fn read_jwks(path: &Path) -> anyhow::Result<KeySet> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, MAX_JWKS_BYTES)?;
    // The size before the encoding: a large binary file is "too large", not "not UTF-8".
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(anyhow::anyhow!(
            "{name}:the key set is larger than {MAX_JWKS_BYTES} bytes; Entra's are a few KB"
        ));
    }
    let text = utf8(&name, bytes, "a JWKS document is JSON, which is UTF-8")?;
    KeySet::from_json(&text).map_err(|e| anyhow::anyhow!("{name}:{e}"))
}

/// A token from a file (or stdin for `-`), trimmed.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let name = if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read_bounded(path, MAX_TOKEN_FILE_BYTES)?;
    if bytes.len() > MAX_TOKEN_FILE_BYTES {
        return Err(Hinted::error(
            format!("{name}: larger than {MAX_TOKEN_FILE_BYTES} bytes, which no token is"),
            "pass the file that holds just the token (Entra tokens are a few KB)",
        ));
    }
    Ok(utf8(&name, bytes, "a token is ASCII text")?
        .trim()
        .to_owned())
}

/// Larger than any chat request a person writes; the gateway's own limits are far below.
const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;

/// A request body for `call --body` (or stdin for `-`): a JSON object, at most 1 MiB.
pub fn read_request_body(
    path: &Path,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let name = if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let bytes = read_bounded(path, MAX_REQUEST_BODY_BYTES)?;
    if bytes.len() > MAX_REQUEST_BODY_BYTES {
        return Err(Hinted::error(
            format!("{name}: larger than {MAX_REQUEST_BODY_BYTES} bytes"),
            "a chat completions request is a JSON object of a few KB",
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(body)) => Ok(body),
        Ok(_) => Err(Hinted::error(
            format!("{name}: not a JSON object"),
            r#"write a chat completions request, e.g. {"messages": [{"role": "user", "content": "hello"}]}"#,
        )),
        Err(e) => Err(Hinted::error(
            format!("{name}:{}:{}: not JSON: {e}", e.line(), e.column()),
            r#"write a chat completions request, e.g. {"messages": [{"role": "user", "content": "hello"}]}"#,
        )),
    }
}

/// A saved plan (`up --plan FILE`), checked ([`SavedPlan::parse`]); errors name the file.
pub fn read_plan_file(path: &Path) -> anyhow::Result<SavedPlan> {
    let bytes = read_bounded(path, MAX_PLAN_BYTES).map_err(|e| {
        Hinted::error(
            e.to_string(),
            "pass the file `provision plan --env ENV --out FILE` wrote",
        )
    })?;
    let plan = SavedPlan::parse(&bytes).map_err(|e| {
        let hint = e.hint().map(Cow::into_owned).unwrap_or_default();
        Hinted::error(format!("{}: {e}", path.display()), hint)
    })?;
    Ok(SavedPlan {
        file: path.to_owned(),
        ..plan
    })
}

/// Refuses, before any sign-in, a `plan --out` target that can not be written: a directory, or
/// a file in a directory that does not exist.
pub fn check_plan_out(path: &Path) -> anyhow::Result<()> {
    let hint = "name a file in an existing directory, e.g. --out plan.json";
    if path.is_dir() {
        return Err(Hinted::error(
            format!("--out {}: a directory, not a file", path.display()),
            hint,
        ));
    }
    let dir = plan_dir(path);
    if !dir.is_dir() {
        return Err(Hinted::error(
            format!("--out {}: no directory {}", path.display(), dir.display()),
            hint,
        ));
    }
    Ok(())
}

/// Writes a saved plan atomically: a temporary file beside the target, renamed over it once
/// complete, so a reader never sees half a plan and a killed `plan` leaves the old file whole.
pub fn write_plan_file(path: &Path, plan: &SavedPlan) -> anyhow::Result<()> {
    use std::io::Write;
    let cannot = |e: &dyn std::fmt::Display| {
        Hinted::error(
            format!("cannot write the plan to {}: {e}", path.display()),
            "name a file in a directory you can write to, e.g. --out plan.json",
        )
    };
    let mut builder = tempfile::Builder::new();
    // Readable like any file a command writes (a temporary file is owner-only): the plan holds
    // no secret, and is reviewed and uploaded as a pipeline artifact.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder
        .tempfile_in(plan_dir(path))
        .map_err(|e| cannot(&e))?;
    file.write_all(plan.to_text().as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| cannot(&e))?;
    file.persist(path).map_err(|e| cannot(&e.error))?;
    Ok(())
}

/// The directory a plan file goes in (`.` for a bare file name).
fn plan_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A policy file's text, refused promptly when it is over APIM's size limit.
fn read_policy(path: &Path) -> anyhow::Result<String> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, MAX_POLICY_BYTES)?;
    check_size(&bytes).map_err(|e| xml_error(&name, &e))?;
    utf8(&name, bytes, "save the policy as UTF-8")
}

fn xml_error(name: &str, e: &ParseError) -> anyhow::Error {
    let hint = e.hint().map(Cow::into_owned).unwrap_or_default();
    Hinted::error(format!("{name}:{}: {}", e.position, e.describe()), hint)
}

/// Reads at most one byte more than `limit` (from stdin for `-`): enough to know that an input
/// is over its limit without reading a huge one whole.
fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<Vec<u8>> {
    let cannot = |e: std::io::Error| anyhow::anyhow!("cannot read {}: {e}", path.display());
    let mut bytes = Vec::new();
    let take = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(take)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(take).read_to_end(&mut bytes))
            .map_err(cannot)?;
    }
    Ok(bytes)
}

/// The bytes as text, or an error at the first byte that is not UTF-8.
fn utf8(name: &str, bytes: Vec<u8>, hint: &str) -> anyhow::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Hinted::error(format!("{name}:{line}:{column}: not UTF-8 text"), hint)
    })
}
