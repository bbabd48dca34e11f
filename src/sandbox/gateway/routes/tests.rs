use super::*;
use crate::policy::canonical;
use crate::policy::model::PolicyDocument;
use crate::policy::simulator::{Decision, Request, Simulator};

fn op(id: &str, method: &str, template: &str) -> Operation {
    Operation {
        id: id.to_owned(),
        method: method.to_owned(),
        url_template: template.to_owned(),
    }
}

fn api(id: &str, path: &str, operations: Vec<Operation>) -> Api {
    Api {
        id: id.to_owned(),
        path: path.to_owned(),
        protocols: vec!["https".to_owned()],
        operations,
    }
}

fn llm() -> Vec<Api> {
    vec![
        api(
            "llm",
            "llm",
            vec![
                op(
                    "chat",
                    "POST",
                    "/deployments/{deployment-id}/chat/completions",
                ),
                op(
                    "embeddings",
                    "POST",
                    "/deployments/{deployment-id}/embeddings",
                ),
                op("responses", "POST", "/responses"),
            ],
        ),
        api("root", "", vec![op("any", "GET", "/*")]),
    ]
}

fn post(path: &str) -> Target<'_> {
    Target {
        scheme: "https",
        method: "POST",
        path,
        query: "",
    }
}

/// What a route came to, compactly: `api/operation {name=value}`.
fn routed(apis: &[Api], target: &Target) -> Result<String, NoRoute> {
    route(apis, target).map(|r| {
        let params: Vec<String> = r
            .parameters
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!("{}/{} {{{}}}", r.api.id, r.operation.id, params.join(","))
    })
}

#[test]
fn template_parameters_are_captured_as_sent() {
    let apis = llm();
    assert_eq!(
        routed(
            &apis,
            &post("/llm/deployments/gpt-4o-mini/chat/completions")
        ),
        Ok("llm/chat {deployment-id=gpt-4o-mini}".to_owned())
    );
    // Not percent-decoded: an encoded slash stays inside its one segment.
    assert_eq!(
        routed(&apis, &post("/llm/deployments/a%2Fb/embeddings")),
        Ok("llm/embeddings {deployment-id=a%2Fb}".to_owned())
    );
    assert_eq!(
        routed(&apis, &post("/llm/responses")),
        Ok("llm/responses {}".to_owned())
    );
}

#[test]
fn a_path_prefix_that_is_not_a_segment_boundary_does_not_match() {
    let apis = vec![api("llm", "llm", vec![op("any", "POST", "/*")])];
    assert_eq!(routed(&apis, &post("/llmx/responses")), Err(NoRoute::Api));
    assert_eq!(routed(&apis, &post("/llmx")), Err(NoRoute::Api));
    assert_eq!(routed(&apis, &post("/llm")), Ok("llm/any {}".to_owned()));
}

#[test]
fn the_longest_api_path_wins_segment_by_segment() {
    let apis = vec![
        api("short", "ai", vec![op("any", "POST", "/*")]),
        api("long", "ai/llm", vec![op("any", "POST", "/*")]),
    ];
    assert_eq!(
        routed(&apis, &post("/ai/llm/responses")),
        Ok("long/any {}".to_owned())
    );
    assert_eq!(
        routed(&apis, &post("/ai/llmx/responses")),
        Ok("short/any {}".to_owned())
    );
}

#[test]
fn a_missing_operation_is_apims_404_even_when_a_shorter_api_has_one() {
    let apis = llm();
    for target in [
        post("/llm/deployments/x/completions"),
        post("/llm/deployments//chat/completions"),
        post("/llm/deployments/x/chat/completions/"),
        post("/llm"),
        Target {
            method: "GET",
            ..post("/llm/responses")
        },
        // Methods are case-sensitive tokens.
        Target {
            method: "post",
            ..post("/llm/responses")
        },
    ] {
        assert_eq!(
            routed(&apis, &target),
            Err(NoRoute::Operation),
            "{target:?}"
        );
    }
    assert_eq!(NoRoute::STATUS, 404);
    assert_eq!(
        NoRoute::BODY,
        r#"{ "statusCode": 404, "message": "Resource not found" }"#
    );
    assert_eq!(
        (NoRoute::REASON, NoRoute::MESSAGE),
        (
            "OperationNotFound",
            "Unable to match incoming request to an operation."
        )
    );
}

#[test]
fn no_api_for_the_path_or_the_scheme_is_a_404() {
    let apis = vec![llm().remove(0)];
    assert_eq!(routed(&apis, &post("/other/responses")), Err(NoRoute::Api));
    let http = Target {
        scheme: "http",
        ..post("/llm/responses")
    };
    assert_eq!(routed(&apis, &http), Err(NoRoute::Api));
    assert_eq!(routed(&[], &post("/llm/responses")), Err(NoRoute::Api));
}

#[test]
fn api_path_and_literal_segments_ignore_case_values_keep_it() {
    let apis = llm();
    assert_eq!(
        routed(&apis, &post("/LLM/Deployments/GPT/Chat/Completions")),
        Ok("llm/chat {deployment-id=GPT}".to_owned())
    );
}

#[test]
fn a_literal_segment_beats_a_parameter_and_a_parameter_beats_a_wildcard() {
    let apis = vec![api(
        "a",
        "a",
        vec![
            op("wild", "GET", "/items/{*rest}"),
            op("param", "GET", "/items/{id}"),
            op("literal", "GET", "/items/new"),
        ],
    )];
    let get = |path| Target {
        method: "GET",
        ..post(path)
    };
    assert_eq!(
        routed(&apis, &get("/a/items/new")),
        Ok("a/literal {}".to_owned())
    );
    assert_eq!(
        routed(&apis, &get("/a/items/7")),
        Ok("a/param {id=7}".to_owned())
    );
    assert_eq!(
        routed(&apis, &get("/a/items/7/parts")),
        Ok("a/wild {rest=7/parts}".to_owned())
    );
    assert_eq!(
        routed(&apis, &get("/a/items")),
        Ok("a/wild {rest=}".to_owned())
    );
}

#[test]
fn query_parameters_in_a_template_are_required_and_captured() {
    let apis = vec![api(
        "a",
        "a",
        vec![op(
            "chat",
            "POST",
            "/deployments/{deployment-id}/chat/completions?api-version={api-version}",
        )],
    )];
    let with = |query| Target {
        query,
        ..post("/a/deployments/d/chat/completions")
    };
    assert_eq!(
        routed(&apis, &with("x=1&api-version=2024-10-21")),
        Ok("a/chat {deployment-id=d,api-version=2024-10-21}".to_owned())
    );
    assert_eq!(routed(&apis, &with("x=1")), Err(NoRoute::Operation));
}

fn doc(xml: &str) -> Document {
    Document::parse(xml).unwrap()
}

/// The composed document as canonical text, sections in order, to compare whole.
fn composed(scopes: &[(Scope, Option<&Document>)]) -> String {
    canonical(&compose(scopes).unwrap()).to_string()
}

fn expected(xml: &str) -> String {
    canonical(&doc(xml)).to_string()
}

const GLOBAL: &str = "<policies><inbound><g-in/></inbound><backend><g-back/></backend>\
    <outbound><g-out/></outbound><on-error><g-err/></on-error></policies>";

#[test]
fn base_inserts_the_enclosing_scope_in_each_section_at_its_position() {
    let global = doc(GLOBAL);
    let api = doc("<policies><inbound><a-first/><base/><a-last/></inbound>\
        <backend><base/><a-back/></backend><outbound><a-out/><base/></outbound>\
        <on-error><base/></on-error></policies>");
    let operation = doc(
        "<policies><inbound><base/><o-in/></inbound><backend><base/></backend>\
        <outbound><base/></outbound><on-error><o-err/><base/></on-error></policies>",
    );
    assert_eq!(
        composed(&[
            (Scope::Global, Some(&global)),
            (Scope::Api, Some(&api)),
            (Scope::Operation, Some(&operation)),
        ]),
        expected(
            "<policies><inbound><a-first/><g-in/><a-last/><o-in/></inbound>\
             <backend><g-back/><a-back/></backend><outbound><a-out/><g-out/></outbound>\
             <on-error><o-err/><g-err/></on-error></policies>"
        )
    );
}

#[test]
fn a_section_without_base_stops_inheritance_and_a_missing_section_counts_as_one() {
    let global = doc(GLOBAL);
    let api = doc("<policies><inbound><a-in/></inbound><backend><base/></backend></policies>");
    assert_eq!(
        composed(&[(Scope::Global, Some(&global)), (Scope::Api, Some(&api))]),
        expected(
            "<policies><inbound><a-in/></inbound><backend><g-back/></backend>\
             <outbound/><on-error/></policies>"
        )
    );
}

#[test]
fn a_scope_without_a_policy_inherits_everything_and_base_at_the_top_is_dropped() {
    let global = doc("<policies><inbound><base/><g-in/></inbound></policies>");
    let operation = doc("<policies><inbound><base/><o-in/></inbound></policies>");
    assert_eq!(
        composed(&[
            (Scope::Global, Some(&global)),
            (Scope::Api, None),
            (Scope::Operation, Some(&operation)),
        ]),
        expected(
            "<policies><inbound><g-in/><o-in/></inbound><backend/><outbound/><on-error/></policies>"
        )
    );
    assert_eq!(
        composed(&[(Scope::Global, None), (Scope::Api, None)]),
        expected("<policies><inbound/><backend/><outbound/><on-error/></policies>")
    );
}

#[test]
fn documents_that_cannot_be_composed_say_which_scope_and_where() {
    let cases = [
        (
            "<policies><inbound><base/>\n<base/></inbound></policies>",
            "API policy 2:1: <base /> appears twice in <inbound> (first at 1:20); APIM allows it once per section",
        ),
        (
            "<policies><inbond/></policies>",
            "API policy 1:11: <inbond> is not a policy section (inbound, backend, outbound, on-error)",
        ),
        (
            "<policies><inbound/><inbound/></policies>",
            "API policy 1:21: <inbound> appears twice",
        ),
        (
            "<policy><inbound/></policy>",
            "API policy 1:1: the root element is <policy>, not <policies>",
        ),
    ];
    for (xml, message) in cases {
        let api = doc(xml);
        assert_eq!(
            compose(&[(Scope::Api, Some(&api))])
                .unwrap_err()
                .to_string(),
            message
        );
    }
}

/// The composed document is what the simulator runs: a global check applies through `<base />`
/// and is dropped by an API policy whose `<inbound>` has none.
#[test]
fn the_simulator_evaluates_the_composed_policy() {
    let global = doc(
        r#"<policies><inbound><check-header name="x-tenant" failed-check-httpcode="403" failed-check-error-message="No tenant." /></inbound></policies>"#,
    );
    let evaluate = |api: &str| {
        let api = doc(api);
        let composed =
            compose(&[(Scope::Global, Some(&global)), (Scope::Api, Some(&api))]).unwrap();
        let model = PolicyDocument::from_document(&composed).unwrap();
        let outcome = Simulator::new(crate::cloud::Cloud::Public).evaluate(
            &model,
            &Request::new("POST", "/llm/responses"),
            0,
        );
        (outcome.decision, outcome.status, outcome.body())
    };
    assert_eq!(
        evaluate("<policies><inbound><base /></inbound></policies>"),
        (
            Decision::Deny,
            403,
            Some(r#"{"message":"No tenant.","statusCode":403}"#.to_owned())
        )
    );
    assert_eq!(
        evaluate("<policies><inbound /></policies>"),
        (Decision::Allow, 200, None)
    );
}
