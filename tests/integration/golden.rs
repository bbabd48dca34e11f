//! The rendered policy of every shipped environment, compared byte for byte with the reviewed copy
//! under tests/golden/render/. Regenerate with `EXPECTORATE=overwrite cargo test`, then review the diff.

use assert_cmd::Command;

use crate::project::manifest_dir;

/// Every environment file that is not abstract.
fn shipped_environments() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(manifest_dir().join("environments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .any(|l| l.trim() == "abstract: true")
        })
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn render(args: &[&str]) -> String {
    let out = Command::cargo_bin("provision")
        .unwrap()
        .current_dir(manifest_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shipped_environment_renders_its_golden_policy() {
    let envs = shipped_environments();
    assert_eq!(
        envs,
        ["dev", "local", "prod"],
        "a new environment needs a golden file here"
    );
    for env in &envs {
        let xml = render(&["render", "--env", env, "--offline"]);
        expectorate::assert_contents(format!("tests/golden/render/{env}.policy.xml"), &xml);
    }
}

#[test]
fn rendering_is_deterministic() {
    let first = render(&["render", "--env", "prod"]);
    for _ in 0..3 {
        assert_eq!(render(&["render", "--env", "prod"]), first);
    }
}

#[test]
fn pinned_app_ids_render_the_same_with_and_without_offline() {
    assert_eq!(
        render(&["render", "--env", "prod"]),
        render(&["render", "--env", "prod", "--offline"])
    );
}

#[test]
fn offline_placeholders_are_unmistakable() {
    let xml = render(&["render", "--env", "dev", "--offline"]);
    assert!(xml.contains(
        "<application-id>PLACEHOLDER(appId of llm-gateway-notebooks-dev)</application-id>"
    ));
    assert!(xml.contains("<audience>PLACEHOLDER(appId of llm-gateway-api-dev)</audience>"));
}

#[test]
fn sovereign_clouds_set_the_authentication_endpoint() {
    let project = crate::project::Project::new();
    let prod = project
        .read("environments/prod.yaml")
        .replace("protected: true", "protected: true\ncloud: usgov");
    project.write("environments/prod.yaml", &prod);
    let out = project
        .provision()
        .args(["render", "--env", "prod"])
        .output()
        .unwrap();
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(
        xml.contains(r#" authentication-endpoint="https://login.microsoftonline.us" "#),
        "{xml}"
    );
    assert!(xml.contains(
        r#"<authentication-managed-identity resource="https://cognitiveservices.azure.us" />"#
    ));
}

#[test]
fn named_values_and_expressions_survive_rendering() {
    let project = crate::project::Project::new();
    project.write(
        "templates/policies/llm-api.xml.tera",
        "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"x-tenant\" exists-action=\"override\"><value>{% raw %}{{entra-tenant-id}}{% endraw %}</value></set-header>\n    <set-variable name=\"v\" value=\"@(context.Request.Headers.GetValueOrDefault(&quot;x&quot;, &quot;&quot;))\" />\n    <set-variable name=\"w\" value=\"@{ return 1; }\" />\n  </inbound>\n</policies>\n",
    );
    let out = project
        .provision()
        .args(["render", "--env", "prod"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"x-tenant\" exists-action=\"override\"><value>{{entra-tenant-id}}</value></set-header>\n    <set-variable name=\"v\" value=\"@(context.Request.Headers.GetValueOrDefault(&quot;x&quot;, &quot;&quot;))\" />\n    <set-variable name=\"w\" value=\"@{ return 1; }\" />\n  </inbound>\n</policies>\n"
    );
}
