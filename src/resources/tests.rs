//! The resources against the shipped `local` environment: what each writes first, what it writes
//! next once Azure has answered, and when it is done.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use super::apim::{ApimService, PRINCIPAL_ID, Policy, RoleAssignment};
use super::entra::{APP_ID, ApiApp, ClientApp, OBJECT_ID, PreAuthorization, ServicePrincipal};
use super::foundry::{Account, ENDPOINT, ModelDeployment};
use super::*;
use crate::config::{self, Blueprint, Environment};
use crate::render::TemplateSet;

fn blueprint() -> Blueprint {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match config::load(&root.join("environments"), "local").unwrap() {
        Environment::Target(b) => *b,
        Environment::Abstract { .. } => unreachable!("local is a target"),
    }
}

fn templates() -> TemplateSet {
    TemplateSet::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap()
}

const API_APP_ID: &str = "11111111-1111-4111-8111-111111111111";
const CLIENT_APP_ID: &str = "22222222-2222-4222-8222-222222222222";

#[test]
fn the_api_app_is_created_then_given_its_identifier_uri() {
    let b = blueprint();
    let app = ApiApp::new(&b);
    let known = Outputs::default();
    let first = app.next_write(None, &known).unwrap();
    assert_eq!(first.verb, Verb::GraphUpsert);
    assert_eq!(
        first.path,
        "/applications(uniqueName='llm-gateway-api-local')"
    );
    let body = first.body.clone().unwrap();
    assert!(
        body.get("identifierUris").is_none(),
        "no app id yet to put in it"
    );
    assert_eq!(body["signInAudience"], "AzureADMyOrg");
    assert_eq!(body["api"]["requestedAccessTokenVersion"], 2);
    let scope = &body["api"]["oauth2PermissionScopes"][0];
    assert_eq!(scope["value"], "llm.invoke");
    assert_eq!(scope["id"], json!(entra::scope_id(&b)));

    // Graph's 201 body: the app with its new ids, no identifier URI.
    let mut created = body.clone();
    created["id"] = json!("ob-1");
    created["appId"] = json!(API_APP_ID);
    created["identifierUris"] = json!([]);
    let second = app.next_write(Some(&created), &known).unwrap();
    assert_eq!(second.verb, Verb::GraphPatch);
    assert_eq!(second.path, "/applications/ob-1");
    assert_eq!(
        second.body.unwrap(),
        json!({"identifierUris": [format!("api://{API_APP_ID}")]})
    );
    created["identifierUris"] = json!([format!("api://{API_APP_ID}")]);
    assert_eq!(app.next_write(Some(&created), &known), None);
    assert_eq!(
        app.change(Some(&created), &app.outputs(&created)),
        Change::NoOp
    );
}

#[test]
fn patching_the_api_keeps_the_pre_authorizations() {
    let b = blueprint();
    let app = ApiApp::new(&b);
    let mut observed = app.desired(&Outputs::default());
    observed["id"] = json!("ob-1");
    observed["appId"] = json!(API_APP_ID);
    observed["identifierUris"] = json!([format!("api://{API_APP_ID}")]);
    observed["api"]["requestedAccessTokenVersion"] = json!(1);
    let pre = json!([{"appId": CLIENT_APP_ID, "delegatedPermissionIds": [entra::scope_id(&b)]}]);
    observed["api"]["preAuthorizedApplications"] = pre.clone();
    let write = app
        .next_write(Some(&observed), &Outputs::default())
        .unwrap();
    let body = write.body.unwrap();
    assert_eq!(body["api"]["requestedAccessTokenVersion"], 2);
    assert_eq!(body["api"]["preAuthorizedApplications"], pre);
    assert_eq!(
        app.findings(&observed, &Outputs::default())
            .iter()
            .map(|f| f.rule)
            .collect::<Vec<_>>(),
        ["v1-access-tokens"]
    );
}

#[test]
fn service_principals_wait_for_their_app_id_and_are_upserted_once() {
    let b = blueprint();
    let sp = ServicePrincipal::of_api(&b);
    assert_eq!(sp.read(&Outputs::default()), None);
    assert_eq!(sp.next_write(None, &Outputs::default()), None);
    let mut known = Outputs::default();
    known.set(&ApiApp::address_of(&b), APP_ID, API_APP_ID);
    let write = sp.next_write(None, &known).unwrap();
    assert_eq!(
        (write.verb, write.path.as_str()),
        (
            Verb::GraphUpsert,
            "/servicePrincipals(appId='11111111-1111-4111-8111-111111111111')"
        )
    );
    assert_eq!(sp.next_write(Some(&json!({"id": "sp"})), &known), None);
}

#[test]
fn clients_request_the_api_scope_and_are_pre_authorized_by_app_id() {
    let b = blueprint();
    let client = &ClientApp::all(&b)[0];
    let mut known = Outputs::default();
    known.set(&ApiApp::address_of(&b), APP_ID, API_APP_ID);
    known.set(&ApiApp::address_of(&b), OBJECT_ID, "ob-1");
    let body = client.next_write(None, &known).unwrap().body.unwrap();
    assert_eq!(body["isFallbackPublicClient"], true);
    assert_eq!(
        body["requiredResourceAccess"],
        json!([{"resourceAppId": API_APP_ID,
                "resourceAccess": [{"id": entra::scope_id(&b), "type": "Scope"}]}])
    );
    let pre = PreAuthorization::new(&b);
    assert_eq!(
        pre.read(&known).unwrap().path,
        "/applications/ob-1",
        "read by object id: the primary has it even before replicas do"
    );
    let api = json!({"id": "ob-1", "api": {"requestedAccessTokenVersion": 2,
        "oauth2PermissionScopes": [{"id": "s"}], "preAuthorizedApplications": []}});
    assert_eq!(
        pre.next_write(Some(&api), &known),
        None,
        "a client without an app id can not be pre-authorized yet"
    );
    known.set(&client.address(), APP_ID, CLIENT_APP_ID);
    let write = pre.next_write(Some(&api), &known).unwrap();
    assert_eq!(write.path, "/applications/ob-1");
    assert_eq!(
        write.body.unwrap(),
        json!({"api": {"requestedAccessTokenVersion": 2,
            "oauth2PermissionScopes": [{"id": "s"}],
            "preAuthorizedApplications": [{"appId": CLIENT_APP_ID,
                "delegatedPermissionIds": [entra::scope_id(&b)]}]}})
    );
}

#[test]
fn an_account_with_keys_is_a_finding_and_an_update_and_another_kind_stops_the_plan() {
    let b = blueprint();
    let account = Account::new(&b);
    let mut observed = account.desired(&Outputs::default());
    observed["properties"]["disableLocalAuth"] = json!(false);
    observed["properties"]["customSubDomainName"] = json!("LLMGW-Foundry-Local");
    observed["location"] = json!("Sweden Central");
    assert_eq!(
        account.change(Some(&observed), &Outputs::default()),
        Change::Update(vec![FieldChange {
            path: "properties.disableLocalAuth".into(),
            old: Some(json!(false)),
            new: Some(json!(true)),
        }])
    );
    assert_eq!(
        account.findings(&observed, &Outputs::default())[0].rule,
        "local-auth-enabled"
    );
    assert_eq!(account.conflict(&observed), None);
    observed["kind"] = json!("OpenAI");
    let (message, hint) = account.conflict(&observed).unwrap();
    assert_eq!(
        message,
        "account llmgw-foundry-local is of kind OpenAI, and the environment says AIServices; an \
         account can not change its kind"
    );
    assert!(hint.contains("never deleted for you"));
}

#[test]
fn the_endpoint_comes_from_the_endpoints_map_first() {
    let b = blueprint();
    let account = Account::new(&b);
    let observed = json!({"properties": {
        "endpoint": "https://x.cognitiveservices.azure.com/",
        "endpoints": {"OpenAI Language Model Instance API": "https://x.openai.azure.com/"}}});
    assert_eq!(
        account.outputs(&observed).get(&account.address(), ENDPOINT),
        Some("https://x.openai.azure.com/")
    );
    let plain = json!({"properties": {"endpoint": "https://x.cognitiveservices.azure.com/"}});
    assert_eq!(
        account.outputs(&plain).get(&account.address(), ENDPOINT),
        Some("https://x.cognitiveservices.azure.com/")
    );
}

#[test]
fn deployments_are_chained_one_after_another() {
    let mut b = blueprint();
    let mut second = b.foundry.deployments[0].clone();
    second.name = "text-embedding-3-small".into();
    b.foundry.deployments.push(second);
    let all = ModelDeployment::all(&b, &Default::default());
    assert_eq!(all[0].depends_on(), [Account::address_of(&b)]);
    assert_eq!(
        all[1].depends_on(),
        [Account::address_of(&b), all[0].address()]
    );
}

#[test]
fn the_policy_is_compared_by_meaning_and_written_as_rawxml() {
    let b = Arc::new(blueprint());
    let policy = Policy::new(b.clone(), Arc::new(templates()));
    let mut known = Outputs::default();
    assert_eq!(policy.next_write(None, &known), None, "no app ids yet");
    known.set(&ApiApp::address_of(&b), APP_ID, API_APP_ID);
    known.set(
        &ClientApp::address_of(&b.entra.clients[0]),
        APP_ID,
        CLIENT_APP_ID,
    );
    let write = policy.next_write(None, &known).unwrap();
    assert_eq!(write.verb, Verb::ArmPut);
    let xml = write.body.as_ref().unwrap()["properties"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(write.body.unwrap()["properties"]["format"], "rawxml");
    assert!(xml.contains(CLIENT_APP_ID) && xml.contains(API_APP_ID));
    // APIM's echo: the same policy written differently.
    let echoed = json!({"properties": {"format": "xml", "value": xml.replace("\n", "\r\n\t")}});
    assert_eq!(policy.next_write(Some(&echoed), &known), None);
    let without_client = json!({"properties": {"value": xml.replace(
        &format!("<application-id>{CLIENT_APP_ID}</application-id>"), "")}});
    let changes = policy.compare(&without_client, &policy.desired(&known));
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0]
            .path
            .starts_with("policy inbound/validate-azure-ad-token")
    );
    assert_eq!(changes[0].new, Some(json!(CLIENT_APP_ID)));
    assert_eq!(
        policy
            .findings(&without_client, &known)
            .iter()
            .map(|f| (f.rule, f.message.as_str()))
            .collect::<Vec<_>>(),
        [(
            "client-not-pinned",
            "does not allow client app llm-gateway-notebooks-local \
             (22222222-2222-4222-8222-222222222222): its tokens are refused"
        )]
    );
    assert!(policy.findings(&echoed, &known).is_empty());
    assert!(
        policy
            .findings(
                &json!({"properties": {"value": "<policies><inbound/></policies>"}}),
                &known
            )
            .iter()
            .any(|f| f.rule == "no-token-check")
    );
}

#[test]
fn the_role_assignment_has_a_stable_name_and_is_replaced_for_a_new_principal() {
    let b = blueprint();
    let role = RoleAssignment::new(&b);
    let again = RoleAssignment::new(&b);
    assert_eq!(
        role.read(&Outputs::default()),
        again.read(&Outputs::default())
    );
    let mut known = Outputs::default();
    known.set(&ApimService::address_of(&b), PRINCIPAL_ID, "p-new");
    let desired = role.desired(&known);
    assert_eq!(desired["properties"]["principalType"], "ServicePrincipal");
    assert!(
        desired["properties"]["roleDefinitionId"]
            .as_str()
            .unwrap()
            .ends_with("/roleDefinitions/5e0bd9bd-7b93-4f28-af87-19fc36ad61bd")
    );
    let mut observed = desired.clone();
    observed["properties"]["principalId"] = json!("p-old");
    assert!(matches!(
        role.change(Some(&observed), &known),
        Change::Replace { .. }
    ));
    assert_eq!(role.change(Some(&desired), &known), Change::NoOp);
    // The form the official example answers with (2022-04-01, CreateForResource).
    let mut answered = desired.clone();
    answered["properties"]["roleDefinitionId"] = json!(
        "/providers/Microsoft.Authorization/roleDefinitions/5E0BD9BD-7B93-4F28-AF87-19FC36AD61BD"
    );
    assert_eq!(role.change(Some(&answered), &known), Change::NoOp);
}

#[test]
fn the_inventory_lists_every_resource_once_with_known_dependencies() {
    let b = Arc::new(blueprint());
    let all = inventory(b.clone(), Arc::new(templates()), &Default::default());
    let addresses: Vec<Address> = all.iter().map(|r| r.address()).collect();
    let unique: std::collections::BTreeSet<&Address> = addresses.iter().collect();
    assert_eq!(unique.len(), addresses.len());
    for r in &all {
        for d in r.depends_on() {
            let at = addresses.iter().position(|a| *a == d);
            let me = addresses.iter().position(|a| *a == r.address()).unwrap();
            assert!(
                at.is_some_and(|at| at < me),
                "{} depends on {d}",
                r.address()
            );
        }
    }
    // Everything has a stable read except what waits for an id.
    let unreadable: Vec<Kind> = all
        .iter()
        .filter(|r| r.read(&Outputs::default()).is_none())
        .map(|r| r.address().kind)
        .collect();
    assert_eq!(
        unreadable,
        [
            Kind::ApiServicePrincipal,
            Kind::ClientServicePrincipal,
            Kind::ApiPreAuthorization
        ]
    );
}

#[test]
fn stable_guids_are_stable_distinct_and_well_formed() {
    let a = stable_guid(&["scope", "llm-gateway-api", "llm.invoke"]);
    assert_eq!(a, stable_guid(&["scope", "llm-gateway-api", "llm.invoke"]));
    assert_ne!(
        a,
        stable_guid(&["scope", "llm-gateway-api-dev", "llm.invoke"])
    );
    // The separator keeps ("ab","c") and ("a","bc") apart.
    assert_ne!(stable_guid(&["ab", "c"]), stable_guid(&["a", "bc"]));
    let parsed = uuid::Uuid::parse_str(&a).unwrap();
    assert_eq!(parsed.get_version_num(), 8);
}

#[test]
fn a_resource_whose_last_operation_failed_is_written_again() {
    let b = blueprint();
    let account = Account::new(&b);
    let mut observed = account.desired(&Outputs::default());
    assert_eq!(
        account.next_write(Some(&observed), &Outputs::default()),
        None
    );
    observed["properties"]["provisioningState"] = json!("Failed");
    let write = account
        .next_write(Some(&observed), &Outputs::default())
        .unwrap();
    assert_eq!(write.verb, Verb::ArmPut);
}

#[test]
fn an_existing_gateway_gets_a_system_identity_and_must_exist() {
    let mut b = blueprint();
    b.apim.service = crate::config::ApimService::Existing {
        name: "apim-platform".into(),
        resource_group: "rg-platform".into(),
    };
    let service = ApimService::new(&b);
    assert_eq!(
        service.read(&Outputs::default()).unwrap().path,
        "/subscriptions/5a4d0000-0000-4000-8000-0000000000b1/resourceGroups/rg-platform/providers/Microsoft.ApiManagement/service/apim-platform"
    );
    assert!(
        service
            .absent_error()
            .unwrap()
            .0
            .contains("apim-platform in resource group rg-platform does not exist")
    );
    let none = json!({"identity": {"type": "None"}});
    let write = service
        .next_write(Some(&none), &Outputs::default())
        .unwrap();
    assert_eq!(
        (write.verb, write.body.unwrap()),
        (
            Verb::ArmPatch,
            json!({"identity": {"type": "SystemAssigned"}})
        )
    );
    let user = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {"/x": {}}}});
    let write = service
        .next_write(Some(&user), &Outputs::default())
        .unwrap();
    assert_eq!(
        write.body.unwrap(),
        json!({"identity": {"type": "SystemAssigned, UserAssigned"}})
    );
    assert!(
        matches!(service.change(Some(&user), &Outputs::default()), Change::Update(c) if c[0].path == "identity.type")
    );
    let both = json!({"identity": {"type": "SystemAssigned, UserAssigned", "principalId": "p"}});
    assert_eq!(service.next_write(Some(&both), &Outputs::default()), None);
    assert_eq!(
        service.outputs(&both).get(&service.address(), PRINCIPAL_ID),
        Some("p")
    );
}

#[test]
fn a_resource_group_elsewhere_stops_the_plan_instead_of_being_replaced() {
    let b = blueprint();
    let group = foundry::ResourceGroup::new(&b);
    assert_eq!(
        group.conflict(&json!({"location": "Sweden Central"})),
        None,
        "only the spelling differs"
    );
    let (message, hint) = group.conflict(&json!({"location": "westeurope"})).unwrap();
    assert_eq!(
        message,
        "resource group rg-llm-gateway-local exists in westeurope, and the environment says \
         swedencentral; a resource group can not move"
    );
    assert!(hint.contains("another `resource_group`"));
    assert!(!matches!(
        group.change(
            Some(&json!({"location": "westeurope"})),
            &Outputs::default()
        ),
        Change::Replace { .. }
    ));
}

#[test]
fn a_pinned_app_is_read_by_its_id_and_never_created() {
    let mut b = blueprint();
    b.entra.api.app_id = Some(crate::config::Guid::parse(API_APP_ID).unwrap());
    let app = ApiApp::new(&b);
    assert_eq!(
        app.read(&Outputs::default()).unwrap().path,
        format!("/applications(appId='{API_APP_ID}')")
    );
    assert_eq!(app.next_write(None, &Outputs::default()), None);
    let (message, hint) = app.absent_error().unwrap();
    assert_eq!(
        message,
        format!(
            "app llm-gateway-api-local is pinned to app id {API_APP_ID} (entra.api.app_id), and \
             no such app exists in the tenant"
        )
    );
    assert_eq!(
        hint,
        "check the id, or remove `entra.api.app_id` to let provision create the app"
    );
    assert_eq!(ApiApp::new(&blueprint()).absent_error(), None);
}

#[test]
fn another_enabled_scope_is_replaced_in_steps_on_our_app_and_stops_the_plan_on_a_pinned_one() {
    let b = blueprint();
    let app = ApiApp::new(&b);
    let known = Outputs::default();
    let mut observed = app.desired(&known);
    observed["id"] = json!("0b0b0000-0000-4000-8000-0000000000aa");
    let new_id = observed["api"]["oauth2PermissionScopes"][0]["id"].clone();
    let old = json!({"id": "0b0b0000-0000-4000-8000-000000000001", "value": "old.scope", "isEnabled": true});
    observed["api"]["oauth2PermissionScopes"] = json!([old]);
    observed["api"]["preAuthorizedApplications"] = json!([
        {"appId": CLIENT_APP_ID, "delegatedPermissionIds": ["0b0b0000-0000-4000-8000-000000000001"]}
    ]);
    assert_eq!(app.conflict(&observed), None, "our own app is not blocked");
    let Change::Replace { reason } = app.change(Some(&observed), &known) else {
        panic!("a destructive replacement");
    };
    assert!(
        reason.starts_with("scope `old.scope` is replaced by `llm.invoke`"),
        "{reason}"
    );
    // Step 1: the old scope disabled, nothing else changed.
    let disable = app.next_write(Some(&observed), &known).unwrap();
    let mut disabled = observed["api"].clone();
    disabled["oauth2PermissionScopes"][0]["isEnabled"] = json!(false);
    assert_eq!(disable.body.unwrap(), json!({"api": disabled}));
    // Step 2: the new scope, and the pre-authorization of the old one dropped.
    let mut after_step_1 = observed.clone();
    after_step_1["api"] = disabled;
    assert!(matches!(
        app.change(Some(&after_step_1), &known),
        Change::Update(_)
    ));
    let replace = app
        .next_write(Some(&after_step_1), &known)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(replace["api"]["oauth2PermissionScopes"][0]["id"], new_id);
    assert_eq!(
        replace["api"]["oauth2PermissionScopes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(replace["api"]["preAuthorizedApplications"], json!([]));

    let mut pinned = blueprint();
    pinned.entra.api.app_id = Some(crate::config::Guid::parse(API_APP_ID).unwrap());
    let (message, hint) = ApiApp::new(&pinned).conflict(&observed).unwrap();
    assert_eq!(
        message,
        "API app llm-gateway-api-local has the enabled scope `old.scope`, which is not \
         `llm.invoke` (entra.api.scope); Entra refuses to remove an enabled scope, and provision \
         does not disable scopes of an app it did not make"
    );
    assert!(hint.starts_with("keep `scope: old.scope`"));
    observed["api"]["oauth2PermissionScopes"][0]["isEnabled"] = json!(false);
    assert_eq!(
        ApiApp::new(&pinned).conflict(&observed),
        None,
        "a disabled scope may go"
    );
}

#[test]
fn a_put_keeps_the_tags_someone_else_set() {
    let b = blueprint();
    let group = foundry::ResourceGroup::new(&b);
    let observed = json!({"location": "swedencentral", "tags": {
        "managed-by": "provision", "provision-env": "local", "owner": "platform", "workload": "old"
    }});
    let write = group
        .next_write(Some(&observed), &Outputs::default())
        .unwrap();
    let tags = &write.body.unwrap()["tags"];
    assert_eq!(tags["owner"], "platform", "theirs kept");
    assert_eq!(tags["workload"], "llm-gateway", "the environment's win");
    assert_eq!(tags["managed-by"], "provision");
}

#[test]
fn a_group_that_exists_without_the_marks_is_used_as_is_and_never_written() {
    let b = blueprint();
    let group = foundry::ResourceGroup::new(&b);
    let known = Outputs::default();
    let theirs = json!({"location": "swedencentral", "tags": {"owner": "platform"}});
    assert_eq!(group.next_write(Some(&theirs), &known), None);
    assert_eq!(group.change(Some(&theirs), &known), Change::NoOp);
    let untagged = json!({"location": "swedencentral"});
    assert_eq!(group.change(Some(&untagged), &known), Change::NoOp);
    let elsewhere = json!({"location": "westeurope"});
    assert!(
        group.conflict(&elsewhere).is_some(),
        "a group can still not move"
    );
    let another_env = json!({"location": "swedencentral", "tags": {"managed-by": "provision", "provision-env": "prod"}});
    assert_eq!(group.next_write(Some(&another_env), &known), None);
    // The group `up` creates carries the marks, and a group carrying them is kept converged.
    let first = group.next_write(None, &known).unwrap();
    assert_eq!(
        first.body.as_ref().unwrap()["tags"]["provision-env"],
        "local"
    );
    let ours = json!({"location": "swedencentral", "tags": {"managed-by": "provision", "provision-env": "local"}});
    assert!(matches!(
        group.change(Some(&ours), &known),
        Change::Update(_)
    ));
}
