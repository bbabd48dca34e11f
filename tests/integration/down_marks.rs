//! What `down` may delete is decided by marks that only `up` puts on what it creates: a resource
//! group that existed before `up` is used as is, never marked, and so never deleted.

use provision::sandbox::DEFAULT_SUBSCRIPTION;
use serde_json::{Value, json};

use crate::down_cli::{World, text};
use crate::sandbox_support::Arm;

const GROUP: &str = "rg-llm-gateway-local";

fn group_path() -> String {
    format!("/subscriptions/{DEFAULT_SUBSCRIPTION}/resourceGroups/{GROUP}")
}

fn group_body(world: &World) -> Option<Value> {
    let state = world.sandbox.state();
    state
        .arm
        .resources
        .get(&group_path().to_ascii_lowercase())
        .map(|r| Value::Object(r.body.clone()))
}

/// Requests from `from` on that wrote to the group itself (not to something inside it).
fn writes_to_group(world: &World, from: usize) -> Vec<String> {
    let path = group_path().to_ascii_lowercase();
    world
        .sandbox
        .requests()
        .iter()
        .skip(from)
        .filter(|r| r.method != "GET")
        .filter(|r| {
            let lower = r.path.to_ascii_lowercase();
            let bare = lower.split('?').next().unwrap_or_default();
            bare == path
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_group_that_existed_before_up_survives_up_and_down_with_its_own_tags() {
    let world = World::with(Default::default()).await;
    let made = Arm::new(&world.sandbox)
        .put(
            &format!("{}?api-version=2025-04-01", group_path()),
            &json!({"location": "swedencentral", "tags": {"owner": "platform", "cost-center": "42"}}),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let before = group_body(&world).unwrap();
    let from = world.sandbox.requests().len();

    world.ok(&["up", "--env", "local"]).await;
    assert_eq!(writes_to_group(&world, from), Vec::<String>::new());
    assert_eq!(group_body(&world).unwrap()["tags"], before["tags"]);
    // Converged: the group's tags are not drift.
    let plan = world
        .run(&["plan", "--env", "local", "--detailed-exitcode"])
        .await;
    assert_eq!(plan.status.code(), Some(0), "{:?}", text(&plan));

    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    let (stdout, stderr) = text(&out);
    assert!(
        stderr.contains(&format!(
            "resource group {GROUP}: left alone, it does not carry the tags managed-by: provision and provision-env: local"
        )),
        "{stdout}\n{stderr}"
    );
    assert_eq!(writes_to_group(&world, from), Vec::<String>::new());
    assert_eq!(
        group_body(&world).unwrap(),
        before,
        "the group, byte for byte"
    );
    // Everything `up` made inside it is gone.
    assert_eq!(world.arm_of("local"), Vec::<String>::new());
    assert_eq!(world.leftovers("local"), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_up_created_carries_the_marks_and_down_deletes_it() {
    let world = World::with(Default::default()).await;
    world.ok(&["up", "--env", "local"]).await;
    let tags = group_body(&world).unwrap()["tags"].clone();
    assert_eq!(tags["managed-by"], "provision");
    assert_eq!(tags["provision-env"], "local");
    let from = world.sandbox.requests().len();
    world.ok(&["down", "--env", "local", "--purge"]).await;
    assert_eq!(
        writes_to_group(&world, from),
        [format!("DELETE {}?api-version=2025-04-01", group_path())]
    );
    assert_eq!(group_body(&world), None);
}

/// Service principals in the directory's deleted items (Graph soft-deletes them for 30 days),
/// by `appId`, of the apps carrying the environment's Graph tag (live or deleted).
fn deleted_principals(world: &World, env: &str) -> Vec<String> {
    let state = world.sandbox.state();
    let tag = json!(format!("provision-env:{env}"));
    let app_ids: Vec<String> = state
        .objects
        .iter()
        .filter(|o| {
            o.body
                .get("tags")
                .and_then(Value::as_array)
                .is_some_and(|t| t.contains(&tag))
        })
        .filter_map(|o| o.str("appId").map(str::to_owned))
        .collect();
    state
        .objects
        .iter()
        .filter(|o| o.deleted_ms.is_some() && o.body.get("servicePrincipalType").is_some())
        .filter_map(|o| o.str("appId").map(str::to_owned))
        .filter(|a| app_ids.contains(a))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principals_stay_soft_deleted_after_down_and_a_purge_removes_them() {
    let world = World::with(Default::default()).await;
    world.ok(&["up", "--env", "local"]).await;
    assert_eq!(deleted_principals(&world, "local").len(), 0);
    let out = world.ok(&["down", "--env", "local"]).await;
    let (stdout, _) = text(&out);
    assert_eq!(
        deleted_principals(&world, "local").len(),
        2,
        "the API's and the client's, in deleted items: {stdout}"
    );
    assert!(
        stdout.contains("entra client service principal llm-gateway-notebooks-local until "),
        "{stdout}"
    );
    let out = world.ok(&["down", "--env", "local", "--purge"]).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.starts_with("environment local torn down: 0 removed, 6 purged"),
        "two apps, their two service principals, the account and the service: {stdout}"
    );
    assert_eq!(deleted_principals(&world, "local"), Vec::<String>::new());
    let purges: Vec<String> = world
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/directory/deletedItems/"))
        .map(|r| r.status.to_string())
        .collect();
    assert_eq!(
        purges,
        ["204", "204", "204", "204"],
        "each purge found its item"
    );
}
