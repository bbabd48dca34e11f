//! Every line `--output json` prints, as one type. Pipelines read these lines; their fields are
//! documented here once, and `provision schema events` (checked in at
//! schema/events.schema.json) is generated from this type, so the documentation, the schema and
//! what is printed cannot drift apart.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::cloud::Cloud;
use crate::policy::Severity;
use crate::policy::simulator::{Decision, NotSimulated};
use crate::resources::Kind;
use crate::resources::preflight::Outcome;

/// One line of `--output json`: a JSON object whose `type` says what it is. Several lines share a
/// `type` (a `summary` of `plan`, of `validate`, of `policy test`); the command that printed them
/// tells them apart.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(title = "provision --output json line")]
pub enum JsonLine {
    /// `render`: the rendered policy of one environment.
    Policy {
        env: String,
        /// The API the policy belongs to.
        api_id: String,
        /// Where `render --out DIR` writes it, relative to DIR.
        file: String,
        /// The app ids rendered as placeholders (offline renders only): the policy is for review.
        placeholders: Vec<String>,
        /// The policy document, byte for byte.
        xml: String,
    },
    /// `render --out`: a policy file written.
    Written { env: String, path: String },
    /// `render --check`: the committed file matches a fresh render.
    InSync { env: String, file: String },
    /// `render --check`: a committed file that differs from a fresh render, is missing, or is no
    /// longer produced.
    #[serde(rename = "difference")]
    FileDifference {
        env: String,
        file: String,
        /// What differs: the first differing line, `missing: …` or `stale: …`.
        detail: String,
    },
    /// `policy diff`: one difference in meaning between two policies.
    #[serde(rename = "difference")]
    PolicyDifference {
        /// The element path, e.g. `inbound/validate-azure-ad-token[1]`.
        path: String,
        /// The attribute that differs, or null when the element itself does.
        attribute: Option<String>,
        change: ChangeKind,
        /// The old value (null when added).
        old: Option<String>,
        /// The new value (null when removed).
        new: Option<String>,
    },
    /// `validate`: a lint finding in a rendered policy.
    #[serde(rename = "finding")]
    PolicyFinding {
        env: String,
        /// The rendered policy's path, as `render --out` names it.
        file: String,
        line: usize,
        column: usize,
        severity: Severity,
        /// A stable rule identifier, e.g. `token-check-tenant`.
        rule: String,
        message: String,
        /// The template line that wrote the element, when exactly one did.
        template: Option<TemplateLine>,
    },
    /// `validate`: an error in an environment file or a template (`rule` is `environment` or
    /// `template`).
    #[serde(rename = "finding")]
    InputFinding {
        env: String,
        /// The file, when known.
        file: Option<String>,
        /// 1-based line, null when unknown.
        line: Option<usize>,
        /// 1-based column, null when unknown.
        column: Option<usize>,
        /// Always `error`.
        severity: Severity,
        rule: String,
        /// The key path in the environment, e.g. `foundry.deployments[0].sku.capacity`.
        path: Option<String>,
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// `validate`: the outcome for one environment.
    Environment {
        env: String,
        file: String,
        status: EnvironmentStatus,
        errors: usize,
        warnings: usize,
    },
    /// `validate`: an abstract environment (`abstract: true`), checked through those that extend
    /// it.
    #[serde(rename = "environment")]
    AbstractEnvironment {
        env: String,
        file: String,
        /// Always `abstract`.
        status: EnvironmentStatus,
    },
    /// `validate`: the totals, last.
    #[serde(rename = "summary")]
    ValidateSummary {
        environments: usize,
        errors: usize,
        warnings: usize,
    },
    /// `policy test`: one case run through the simulator.
    Case {
        env: String,
        /// `matrix` for the built-in token matrix, else the cases file.
        source: String,
        name: String,
        passed: bool,
        /// What the case expects; unset fields are not checked.
        expected: Expected,
        actual: Actual,
    },
    /// `policy test`: the totals, last.
    #[serde(rename = "summary")]
    TestSummary {
        env: String,
        passed: usize,
        failed: usize,
    },
    /// `doctor`: one preflight check.
    #[serde(rename = "check")]
    PreflightCheck {
        env: String,
        /// `identity`, `provider`, `permissions`, `model`, `quota`, `foundry-name`, `apim-name`
        /// or `graph`.
        check: String,
        status: Outcome,
        message: String,
        /// What to do, for a failure or warning.
        hint: Option<String>,
    },
    /// `doctor`: the totals, last.
    #[serde(rename = "summary")]
    DoctorSummary {
        env: String,
        passed: usize,
        warnings: usize,
        failed: usize,
    },
    /// `plan`, `up`: one resource and what `up` changes about it.
    Resource {
        env: String,
        kind: Kind,
        name: String,
        action: Action,
        /// Field by field; for a create, every field with `old` null.
        changes: Vec<FieldChange>,
        /// Why a replace is needed; null otherwise.
        reason: Option<String>,
        /// Security findings about the resource, changed or not.
        findings: Vec<ResourceFinding>,
    },
    /// `plan`, `up`: the totals, after the resources.
    #[serde(rename = "summary")]
    PlanSummary {
        env: String,
        create: usize,
        update: usize,
        replace: usize,
        delete: usize,
        /// Soft-deleted copies to purge (`plan --destroy --purge`, `down --purge`); 0 otherwise.
        purge: usize,
        unchanged: usize,
        /// How many security findings the resources have.
        findings: usize,
        /// Whether `up` would change anything.
        changes: bool,
    },
    /// `plan --out FILE`: the plan saved, after the summary.
    PlanSaved {
        env: String,
        /// The file, as given to `--out`.
        path: String,
        /// The file's `format`, `provision-plan/1`.
        format: String,
        /// Resources in the plan.
        resources: usize,
        /// Whether applying it changes anything.
        changes: bool,
    },
    /// `up --plan FILE`: a resource that changed since the plan was saved, one line each in plan
    /// order, before the `error` line; nothing was written.
    Stale {
        env: String,
        kind: Kind,
        name: String,
        /// Its fingerprint in the plan (`ETag "…"`, `SHA-256 …`, `absent`, `not read`,
        /// `listed`); null when it is new since.
        saved: Option<String>,
        /// Its fingerprint now; null when it is gone.
        found: Option<String>,
        /// The `stale plan: …` line.
        message: String,
    },
    /// `up`: a resource's progress while applying.
    Progress {
        #[serde(flatten)]
        step: ProgressStep,
        kind: Kind,
        name: String,
        /// Milliseconds since applying started.
        at_ms: u64,
    },
    /// `up`: how to call what was built, last.
    Outputs {
        env: String,
        /// Writes made by this run.
        writes: usize,
        elapsed_ms: u64,
        gateway_url: String,
        api_path: String,
        api_url: String,
        tenant_id: String,
        api_app_id: String,
        /// What a client asks for when signing in, `api://<api app id>/<scope>`.
        scope: String,
        clients: Vec<ClientApp>,
    },
    /// `down`: what was torn down, last.
    Down {
        env: String,
        removed: usize,
        purged: usize,
        writes: usize,
        elapsed_ms: u64,
        /// What stays soft-deleted (without `--purge`, or when a purge was refused);
        /// `purge_command` frees the names.
        soft_deleted: Vec<SoftDeleted>,
        purge_command: Option<String>,
        /// Purges the identity was not allowed to make (403), each with ARM's or Graph's reason.
        purge_refused: Vec<String>,
    },
    /// `whoami`: who the tool signs in as. From the ARM token's claims; the token itself is never
    /// printed.
    Whoami {
        env: String,
        cloud: Cloud,
        /// The credential that signed in.
        credential: String,
        tenant_id: Option<String>,
        object_id: Option<String>,
        app_id: Option<String>,
        subscription: Subscription,
    },
    /// `bootstrap`: the deployment identity a pipeline signs in as, and the variables to set in
    /// the CI (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_SUBSCRIPTION_ID`). Never a secret:
    /// the pipeline signs in with its CI's OIDC token.
    Bootstrap {
        env: String,
        client_id: String,
        tenant_id: String,
        subscription_id: String,
        /// The service principal's object id (what role assignments name).
        principal_id: String,
        /// The federated credential's issuer and subject: what the CI's tokens must carry.
        issuer: String,
        subject: String,
        /// What this run changed; empty when everything was in place.
        changes: Vec<String>,
        /// What bootstrap did not do, and who must do it.
        notes: Vec<String>,
    },
    /// `models`: one model version the environment's location offers.
    Model {
        env: String,
        location: String,
        format: String,
        name: String,
        version: String,
        /// Whether it is the version a deployment that names none gets.
        default: bool,
        /// The API's `lifecycleStatus`: GenerallyAvailable, Preview, Legacy, Deprecating (no new
        /// customers) or Deprecated (retired).
        lifecycle: String,
        /// When inference stops (`deprecation.inference`, `YYYY-MM-DD`), if Azure says.
        retires: Option<String>,
        skus: Vec<ModelSku>,
    },
    /// `sandbox serve`: where the sandbox listens, once it does.
    Sandbox {
        base_url: String,
        login: String,
        graph: String,
        arm: String,
        default_tenant: String,
        subscriptions: Vec<String>,
        /// The operator app's client id; its secret is at `/_sandbox/info`, never printed.
        operator_client_id: String,
    },
    /// `sandbox clock`: the sandbox's clock, shown or after a move.
    SandboxClock {
        /// The sandbox's time now, RFC 3339 in UTC.
        now: String,
        /// How far the sandbox's clock is ahead of the system clock.
        offset_seconds: u64,
    },
    /// `token`: the signed-in user and the token's facts; the token itself only with `--print`,
    /// and then alone, not in a JSON line.
    Token {
        env: String,
        /// The client app's unique name and its app id.
        client: String,
        client_id: String,
        /// The signed-in user (`preferred_username`, `upn` or `name`), when the token says.
        user: Option<String>,
        /// The token's `aud`.
        audience: Option<String>,
        /// The token's `scp`, space-separated.
        scopes: Option<String>,
        /// When the token expires, RFC 3339 in UTC.
        expires_on: String,
        /// Where the token came from: `cache` (no request), `refresh` or `device-code`.
        source: String,
        /// The cache file holding it (mode 0600).
        cache_file: String,
    },
    /// `token --logout`: the saved sign-in removed (or there was none).
    SignedOut {
        env: String,
        client: String,
        removed: bool,
    },
    /// `call`: the model's answer through the gateway.
    Answer {
        env: String,
        deployment: String,
        /// The gateway's HTTP status.
        status: u16,
        /// The model that answered, as it says.
        model: Option<String>,
        content: String,
    },
    /// `verify`: one case of the boundary matrix, against the live endpoints.
    BoundaryCase {
        env: String,
        /// The case, e.g. `good-token`, `foreign-tenant`, `foundry-with-key`, or the name a
        /// `--cases` file gives it.
        case: String,
        target: crate::boundary::cases::Target,
        /// The status the case must get, `refused` (a 3xx or 4xx) or `any`; for a `--cases`
        /// case, then the reason and decision it expects (`401 TokenExpired`).
        expected: String,
        /// The status it got; null when skipped or when no answer came.
        status: Option<u16>,
        /// The gateway's message, the model's answer, or Azure's error.
        message: Option<String>,
        /// Whether the answer is the expected one.
        held: bool,
        /// Why the case was not run (a token that could not be had), else null.
        skipped: Option<String>,
        /// What the simulator predicts on the stored policy (gateway cases).
        predicted_status: Option<u16>,
        predicted_reason: Option<String>,
        /// Where the gateway and the simulator disagree, else null.
        drift: Option<String>,
    },
    /// `verify`: the totals, last.
    #[serde(rename = "summary")]
    VerifySummary {
        env: String,
        cases: usize,
        held: usize,
        failed: usize,
        skipped: usize,
        /// Cases where the gateway and the simulator disagree.
        drifted: usize,
    },
    /// Any command that fails: one line per problem, before exit code 1.
    Error {
        message: String,
        /// What to do about it, or null.
        hint: Option<String>,
    },
}

/// A template file and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TemplateLine {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentStatus {
    Ok,
    Failed,
    /// `abstract: true`: exists to be extended.
    Abstract,
}

/// A case's expectation: unset fields are not checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Expected {
    pub decision: Option<Decision>,
    pub status: Option<u16>,
    pub reason: Option<String>,
}

/// What the simulator decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Actual {
    pub decision: Decision,
    /// The HTTP status the caller gets.
    pub status: u16,
    /// Machine-readable reason of a denial, e.g. `TokenExpired`.
    pub reason: Option<String>,
    /// Why, for people; never contains the token.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum Action {
    #[serde(rename = "create")]
    Create,
    #[serde(rename = "update")]
    Update,
    #[serde(rename = "replace")]
    Replace,
    #[serde(rename = "no-op")]
    NoOp,
    /// `plan --destroy`, `down`: removed (soft-deleted where Azure or Entra keep a copy).
    #[serde(rename = "delete")]
    Delete,
    /// `plan --destroy --purge`, `down --purge`: a soft-deleted copy removed for good.
    #[serde(rename = "purge")]
    Purge,
    /// `plan --destroy`, `down`: matched the environment by name, yet left alone (`reason` says
    /// why: it lacks the environment's marks).
    #[serde(rename = "skip")]
    Skip,
}

/// A soft-deleted copy `down` left (without `--purge`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SoftDeleted {
    pub kind: Kind,
    pub name: String,
    /// Until when it holds its name (RFC 3339), when the service says.
    pub until: Option<String>,
}

/// One field of a resource that changes.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FieldChange {
    /// Dotted path in the resource's body, e.g. `properties.publicNetworkAccess`.
    pub path: String,
    /// Null when the field is new.
    pub old: Option<Value>,
    /// Null when the field goes, or when its value is known only after apply.
    pub new: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ResourceFinding {
    /// A stable identifier, e.g. `local-auth-enabled`.
    pub rule: String,
    pub message: String,
}

/// The step a resource reached, in `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressStep {
    /// Checking the resource.
    Started,
    /// Sending a write.
    Writing {
        /// What is being written, e.g. `PUT`.
        what: String,
    },
    /// Converged.
    Done {
        /// Writes it took (0: unchanged).
        writes: usize,
        elapsed_ms: u64,
    },
    /// Stopped the run.
    Failed { error: String },
}

/// A client app of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ClientApp {
    pub unique_name: String,
    pub app_id: String,
}

/// A SKU (deployment type) a model version is offered in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ModelSku {
    pub name: String,
    /// Capacity a deployment gets by default, in the SKU's units (1,000 tokens per minute).
    pub default_capacity: Option<u64>,
    pub max_capacity: Option<u64>,
    /// The subscription's quota left for it in the location (usages API), if it could be read.
    pub quota_left: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Subscription {
    pub id: String,
    pub display_name: String,
    pub state: String,
}

/// `policy eval`'s answer: one JSON object, the command's stable interface (not an event line).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Evaluation {
    pub decision: Decision,
    pub status: u16,
    /// Machine-readable reason of a denial, e.g. `TokenExpired`.
    pub reason: Option<String>,
    /// The message the caller sees in `{"statusCode":N,"message":"…"}`.
    pub message: Option<String>,
    /// The policy that decided (or the last one evaluated).
    pub policy: Option<String>,
    /// Why, for people; never contains the token.
    pub detail: Option<String>,
    /// What the policies did to the request on its way (headers set, variables, rewrites).
    pub effects: Vec<Value>,
    /// Policies the simulator could not evaluate, and where they are.
    pub not_simulated: Vec<NotSimulated>,
}

/// The JSON Schema of the event stream: what `provision schema events` prints.
pub fn schema() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<JsonLine>()
        .to_value();
    every_field_required(&mut schema);
    flattened_into_branches(&mut schema);
    schema
}

/// A line with a flattened enum (`progress` and its `event`) is generated as shared properties
/// beside a `oneOf` of the enum's branches, with every branch's fields allowed in any branch:
/// each branch takes the shared properties instead, and allows no others.
fn flattened_into_branches(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            if let (Some(Value::Object(shared)), Some(Value::Array(branches))) =
                (fields.get("properties").cloned(), fields.get_mut("oneOf"))
            {
                for branch in branches.iter_mut() {
                    if let Some(Value::Object(own)) = branch.get_mut("properties") {
                        // `true` marks a property the branches define, allowed beside the rest.
                        for (name, property) in &shared {
                            if *property != Value::Bool(true) {
                                own.entry(name.clone()).or_insert_with(|| property.clone());
                            }
                        }
                    }
                    every_field_required(branch);
                    branch["additionalProperties"] = Value::Bool(false);
                }
                for key in ["properties", "required", "additionalProperties"] {
                    fields.remove(key);
                }
            }
            fields.values_mut().for_each(flattened_into_branches);
        }
        Value::Array(items) => items.iter_mut().for_each(flattened_into_branches),
        _ => {}
    }
}

/// Every field of every line is printed, `null` when it has no value; the derive would leave
/// `Option` fields out of `required`, letting a line without them pass.
fn every_field_required(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            if let Some(Value::Object(properties)) = fields.get("properties") {
                let names = properties.keys().cloned().map(Value::String).collect();
                fields.insert("required".to_owned(), Value::Array(names));
            }
            fields.values_mut().for_each(every_field_required);
        }
        Value::Array(items) => items.iter_mut().for_each(every_field_required),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_keep_the_documented_wire_format() {
        let line = JsonLine::Progress {
            step: ProgressStep::Done {
                writes: 2,
                elapsed_ms: 40,
            },
            kind: Kind::NamedValue,
            name: "x".to_owned(),
            at_ms: 50,
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            json!({"type": "progress", "event": "done", "writes": 2, "elapsed_ms": 40,
                   "kind": "named_value", "name": "x", "at_ms": 50})
        );
        let line = JsonLine::AbstractEnvironment {
            env: "base".to_owned(),
            file: "environments/base.yaml".to_owned(),
            status: EnvironmentStatus::Abstract,
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            json!({"type": "environment", "env": "base", "file": "environments/base.yaml",
                   "status": "abstract"})
        );
        let line = JsonLine::PolicyDifference {
            path: "inbound".to_owned(),
            attribute: None,
            change: ChangeKind::Added,
            old: None,
            new: Some("<x/>".to_owned()),
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            json!({"type": "difference", "path": "inbound", "attribute": null,
                   "change": "added", "old": null, "new": "<x/>"})
        );
    }
}
