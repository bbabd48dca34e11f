//! `plan`, `up` and `provision models` against the sandbox's model catalog, and the replacement
//! of a renamed API scope: the real binary, judged by its exit code, its exact words and what the
//! sandbox holds and was sent. Dates are relative to the sandbox's clock (see `models`).

use provision::sandbox::Sandbox;
use serde_json::{Value, json};

use crate::models::{date_in, location_models, move_to, publish};
use crate::sandbox_support::{Arm, SUBSCRIPTION, default_sandbox};

// ---------------------------------------------------------------------------------------------
// plan and up, the real binary against the sandbox

/// A sandbox and a project whose `local` environment points at it and deploys `test-chat` with
/// the `model:` lines and `upgrade:` given.
struct World {
    sandbox: Sandbox,
    project: crate::project::Project,
    /// The shipped `local.yaml`, which each [`World::deploy`] rewrites.
    local: String,
}

impl World {
    async fn new() -> World {
        let sandbox = default_sandbox().await;
        let project = crate::project::Project::new();
        let local = project.read("environments/local.yaml");
        World {
            sandbox,
            project,
            local,
        }
    }

    /// `test-chat` version 1, retiring on `first_retires`, and version 2, the default, retiring
    /// in 400 days: the catalog every lifecycle test starts from.
    fn publish_two(&self, first_retires: &str) {
        publish(&self.sandbox, "test-chat", "1", false, first_retires);
        publish(
            &self.sandbox,
            "test-chat",
            "2",
            true,
            &date_in(&self.sandbox, 400),
        );
    }

    fn deploy(&self, version: &str, upgrade: &str) {
        let local = self
            .local
            .replace(
                "address: 127.0.0.1:7171",
                &format!("address: {}", self.sandbox.addr()),
            )
            .replace(
                "foundry:\n  account: llmgw-foundry-local\n",
                &format!(
                    "foundry:\n  account: llmgw-foundry-local\n  deployments:\n    - name: chat\n      \
                     model: {{ name: test-chat, version: \"{version}\" }}\n      sku: {{ name: \
                     GlobalStandard, capacity: 1 }}\n      upgrade: {upgrade}\n"
                ),
            );
        self.project.write("environments/local.yaml", &local);
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.project.provision();
        cmd.args(args).env_remove("PROVISION_AUTH");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Requests that changed something, since the log's `from`th entry.
    fn writes(&self, from: usize) -> Vec<String> {
        self.sandbox.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET" && !r.path.contains("/oauth2/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn deployed_version(&self) -> Value {
        let id = format!(
            "/subscriptions/{SUBSCRIPTION}/resourcegroups/rg-llm-gateway-local/providers/microsoft.cognitiveservices/accounts/llmgw-foundry-local/deployments/chat"
        );
        self.sandbox.state().arm.resources[&id].body["properties"]["model"]["version"].clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_version_stops_plan_and_up_before_any_write_naming_the_replacement() {
    let world = World::new().await;
    let retired = date_in(&world.sandbox, -1);
    world.publish_two(&retired);
    world.deploy("1", "on-expiry");
    let from = world.sandbox.requests().len();
    for command in ["plan", "up"] {
        let out = world.run(&[command, "--env", "local"]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{command}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: model test-chat version 1 retired on {retired} in swedencentral: Azure \
                 refuses new deployments of it and its inference answers 410\nhint: the \
                 replacement is the default version 2: set `model.version: \"2\"` (or `default`)\n"
            )
        );
    }
    assert_eq!(world.writes(from), Vec::<String>::new());

    // The other side: the default version plans, and the plan shows which one that is.
    world.deploy("default", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("  + foundry deployment chat\n      properties.model.format: \"OpenAI\"\n      properties.model.name: \"test-chat\"\n      properties.model.version: \"2\"\n      properties.versionUpgradeOption: \"OnceCurrentVersionExpired\"\n"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_versions_are_errors_listing_what_exists() {
    let world = World::new().await;
    publish(
        &world.sandbox,
        "test-chat",
        "1",
        true,
        &date_in(&world.sandbox, 400),
    );
    world.deploy("7", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: model test-chat version 7 is not offered in swedencentral; it offers 1\nhint: \
         set `model.version` to one of those, or to `default`\n"
    );
    world.deploy("1", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Retirement is judged on the environment's clock: the sandbox's, moved past the date, makes
/// `plan` and `doctor` see the version retired, exactly as its inference endpoint does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retirement_is_judged_on_the_sandboxs_clock_not_the_machines() {
    let world = World::new().await;
    let retires = date_in(&world.sandbox, 10);
    world.publish_two(&retires);
    world.deploy("1", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("[model-retiring]"),
        "{}",
        text(&out.stdout)
    );

    world
        .sandbox
        .advance(provision::clock::SignedDuration::from_hours(11 * 24))
        .unwrap();
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(1),
            format!(
                "error: model test-chat version 1 retired on {retires} in swedencentral: Azure \
                 refuses new deployments of it and its inference answers 410\nhint: the \
                 replacement is the default version 2: set `model.version: \"2\"` (or `default`)\n"
            )
        )
    );
    let out = world.run(&["doctor", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains(&format!(
            "error   model: deployment chat: model test-chat version 1 retired on {retires} in \
             swedencentral"
        )),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_retiring_in_30_days_is_a_warning_and_one_in_a_year_is_not() {
    let world = World::new().await;
    let soon = date_in(&world.sandbox, 30);
    world.publish_two(&soon);
    world.deploy("1", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let warning = format!(
        "\nmodel findings:\n  ! foundry deployment chat: model test-chat version 1 retires on {soon}; the \
         replacement is the default version 2: set `model.version: \"2\"` (or `default`) \
         [model-retiring]\n"
    );
    assert!(
        text(&out.stdout).contains(&warning),
        "{}",
        text(&out.stdout)
    );
    world.deploy("2", "on-expiry");
    let out = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("[model-retiring]"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_on_expiry_is_upgraded_by_azure_and_never_is_retired() {
    for (upgrade, expected) in [("on-expiry", 0), ("never", 1)] {
        let world = World::new().await;
        let expiry = date_in(&world.sandbox, 30);
        world.publish_two(&expiry);
        world.deploy("1", upgrade);
        let up = world.run(&["up", "--env", "local"]).await;
        assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
        move_to(&world.sandbox, &expiry);
        let from = world.sandbox.requests().len();
        let plan = world
            .run(&["plan", "--env", "local", "--detailed-exitcode"])
            .await;
        assert_eq!(
            plan.status.code(),
            Some(expected),
            "{upgrade}: {}",
            text(&plan.stderr)
        );
        assert_eq!(world.writes(from), Vec::<String>::new());
        if upgrade == "on-expiry" {
            assert_eq!(world.deployed_version(), "2");
            assert!(
                text(&plan.stdout).contains(
                    "  ! foundry deployment chat: upgraded by Azure from 1 to 2 (upgrade: \
                     on-expiry); set `model.version: \"2\"` to record it [model-upgraded]\n"
                ),
                "{}",
                text(&plan.stdout)
            );
            // A re-run of up changes nothing and never puts the old version back.
            let again = world.run(&["up", "--env", "local"]).await;
            assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
            assert_eq!(world.writes(from), Vec::<String>::new());
        } else {
            assert_eq!(world.deployed_version(), "1");
            assert!(
                text(&plan.stderr).starts_with(&format!(
                    "error: model test-chat version 1 retired on {expiry} in swedencentral"
                )),
                "{}",
                text(&plan.stderr)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_sandbox_locations_catalog_as_a_table_and_as_json() {
    let world = World::new().await;
    world.deploy("1", "on-expiry");
    publish(&world.sandbox, "test-chat", "1", true, "2030-01-01");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));

    let out = world.run(&["models", "--env", "local"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "models offered in swedencentral (local)");
    assert!(lines[1].starts_with("model "), "{table}");
    assert!(
        lines[1].ends_with("skus (default/max capacity, quota left)"),
        "{table}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no row for {name}: {table}"))
    };
    assert_eq!(
        row("gpt-5.6-luna"),
        "gpt-5.6-luna 2026-07-09 yes GenerallyAvailable 2028-01-11 GlobalStandard 10/1000, 1000 \
         left; DataZoneStandard 10/1000, 1000 left"
    );
    // The deployment `up` made holds 1 unit of the test model's quota.
    assert_eq!(
        row("test-chat"),
        "test-chat 1 yes GenerallyAvailable 2030-01-01 GlobalStandard 10/1000, 999 left"
    );

    let out = world
        .run(&["models", "--env", "local", "--output", "json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let catalog = Arm::new(&world.sandbox)
        .get(&location_models("swedencentral"))
        .await;
    assert_eq!(
        lines.len() * 2,
        catalog.body["value"].as_array().unwrap().len()
    );
    let mini = lines.iter().find(|l| l["name"] == "gpt-4o-mini").unwrap();
    assert_eq!(
        mini,
        &json!({ "type": "model", "env": "local", "location": "swedencentral",
                 "format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18",
                 "default": true, "lifecycle": "Deprecating", "retires": "2027-04-14",
                 "skus": [
                   { "name": "GlobalStandard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 },
                   { "name": "DataZoneStandard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 },
                   { "name": "Standard", "default_capacity": 10, "max_capacity": 1000, "quota_left": 1000 }
                 ] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_the_locations_catalog_the_accounts_own_list_is_judged_instead() {
    let script = provision::sandbox::FaultScript::parse(
        "faults.yaml",
        "faults:\n  - method: GET\n    path: /subscriptions/*/locations/*/models*\n    status: 403\n    \
         body: { error: { code: AuthorizationFailed, message: \"no read on the subscription\" } }\n",
    )
    .unwrap();
    let sandbox = crate::sandbox_support::start(provision::sandbox::SandboxConfig {
        fault_script: Some(script),
        ..provision::sandbox::SandboxConfig::default()
    })
    .await;
    let project = crate::project::Project::new();
    let local = project.read("environments/local.yaml");
    let world = World {
        sandbox,
        project,
        local,
    };
    let expiry = date_in(&world.sandbox, 30);
    world.publish_two(&expiry);
    world.deploy("1", "never");
    // No account yet, and no right to the location's list: planned unchecked, with a warning.
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    assert!(
        text(&up.stderr).contains("the model catalog could not be read (403)"),
        "{}",
        text(&up.stderr)
    );
    move_to(&world.sandbox, &expiry);
    let plan = world.run(&["plan", "--env", "local"]).await;
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan.stdout));
    assert!(
        text(&plan.stderr).starts_with(&format!(
            "error: model test-chat version 1 retired on {expiry} in swedencentral"
        )),
        "{}",
        text(&plan.stderr)
    );
    let account_lists = world
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.contains("/accounts/llmgw-foundry-local/models"))
        .count();
    assert_eq!(account_lists, 2, "one per run");
}

// ---------------------------------------------------------------------------------------------
// Replacing the API's scope

impl World {
    /// `local` with its API scope renamed to `scope`.
    fn rename_scope(&self, scope: &str) {
        let local = self
            .local
            .replace(
                "address: 127.0.0.1:7171",
                &format!("address: {}", self.sandbox.addr()),
            )
            .replace(
                "    unique_name: llm-gateway-api-local\n",
                &format!("    unique_name: llm-gateway-api-local\n    scope: {scope}\n"),
            );
        self.project.write("environments/local.yaml", &local);
    }

    /// The API app's scopes (value, enabled) and its pre-authorized scope ids, by scope value.
    fn api_app(&self) -> (Vec<(String, bool)>, Vec<String>) {
        let state = self.sandbox.state();
        let app = state
            .objects
            .iter()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .expect("the API app");
        let scopes = app.body["api"]["oauth2PermissionScopes"]
            .as_array()
            .unwrap();
        let value_of = |id: &Value| {
            scopes
                .iter()
                .find(|s| &s["id"] == id)
                .map_or("?".to_owned(), |s| s["value"].as_str().unwrap().to_owned())
        };
        let pre = app.body["api"]["preAuthorizedApplications"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["delegatedPermissionIds"].as_array().unwrap().clone())
            .map(|id| value_of(&id))
            .collect();
        let scopes = scopes
            .iter()
            .map(|s| {
                (
                    s["value"].as_str().unwrap().to_owned(),
                    s["isEnabled"] == true,
                )
            })
            .collect();
        (scopes, pre)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_scope_is_a_destructive_replacement_that_up_makes_only_when_confirmed() {
    let world = World::new().await;
    world.rename_scope("llm.invoke");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));

    world.rename_scope("llm.call");
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan.stderr));
    assert!(
        text(&plan.stdout).starts_with(
            "-/+ entra api app llm-gateway-api-local\n      replaced: scope `llm.invoke` is \
             replaced by `llm.call`: Entra needs it disabled first, then the new scope and the \
             pre-authorizations are written; tokens for `llm.invoke` stop being issued and \
             clients that ask for it fail\n"
        ),
        "{}",
        text(&plan.stdout)
    );
    let from = world.sandbox.requests().len();
    let refused = world.run(&["up", "--env", "local"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).ends_with(
            "error: `up` would replace resources of environment local (see `replaced:` \
             above)\nhint: review the plan above and run again with --yes\n"
        ),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(world.writes(from), Vec::<String>::new());
    assert_eq!(world.api_app().0, vec![("llm.invoke".to_owned(), true)]);

    let done = world.run(&["up", "--env", "local", "--yes"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.call".to_owned(), true)],
            vec!["llm.call".to_owned()]
        )
    );
    // Disable, replace, pre-authorize: three PATCHes of the API app; the client app's asks for
    // the new scope in one more.
    let api_id = {
        let state = world.sandbox.state();
        let app = state
            .objects
            .iter()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .unwrap();
        app.str("id").unwrap().to_owned()
    };
    let patches: Vec<String> = world
        .writes(from)
        .into_iter()
        .filter(|w| w.starts_with("PATCH /v1.0/applications/"))
        .collect();
    let of_api = format!("PATCH /v1.0/applications/{api_id}");
    assert_eq!(
        patches.iter().filter(|p| **p == of_api).count(),
        3,
        "{patches:#?}"
    );
    assert_eq!(patches.len(), 4, "{patches:#?}");
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_killed_after_the_disable_is_finished_by_the_next_run() {
    let world = World::new().await;
    world.rename_scope("llm.invoke");
    let up = world.run(&["up", "--env", "local"]).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    // What a run killed right after its first step leaves: the old scope disabled, still there,
    // still pre-authorized.
    {
        let mut state = world.sandbox.state();
        let app = state
            .objects
            .iter_mut()
            .find(|o| o.str("uniqueName") == Some("llm-gateway-api-local"))
            .unwrap();
        app.body.get_mut("api").unwrap()["oauth2PermissionScopes"][0]["isEnabled"] = json!(false);
    }
    world.rename_scope("llm.call");
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.invoke".to_owned(), false)],
            vec!["llm.invoke".to_owned()]
        )
    );
    // Nothing enabled is removed any more: an update, no confirmation needed.
    let again = world.run(&["up", "--env", "local"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        world.api_app(),
        (
            vec![("llm.call".to_owned(), true)],
            vec!["llm.call".to_owned()]
        )
    );
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
}
