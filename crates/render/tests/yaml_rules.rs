//! helm's output is read with the YAML rules the Kubernetes API server applies (YAML 1.1
//! scalars through sigs.k8s.io/yaml), on small charts of this suite's own
//! (tests/fixtures/): an octal `defaultMode` is the integer the API server sees, and a YAML
//! 1.1 boolean where Kubernetes wants a string is refused, naming the field.

use std::path::PathBuf;

use render::objects::ParseError;
use render::{Helm, Object, RenderError, RenderRequest, Rendered};
use rstest::rstest;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn helm() -> Helm {
    Helm::from_env().unwrap_or_else(|e| panic!("these tests run the real helm: {e}"))
}

fn render(req: RenderRequest) -> Result<Rendered, RenderError> {
    req.render(&helm())
}

#[test]
fn octal_default_mode_is_the_integer_the_api_server_reads() {
    let r =
        render(RenderRequest::new(fixture("octal-default-mode"))).unwrap_or_else(|e| panic!("{e}"));
    // The template writes `defaultMode: 0644`: YAML 1.1 octal.
    let want = i32::from_str_radix("644", 8).expect("octal literal");
    let sts = r.statefulset().expect("the fixture renders a StatefulSet");
    let vols = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.clone())
        .unwrap_or_default();
    let modes: Vec<Option<i32>> = vols
        .iter()
        .map(|v| v.config_map.as_ref().and_then(|c| c.default_mode))
        .collect();
    assert_eq!(modes, [Some(want)], "configMap defaultMode");
    let doc = &r.documents[0];
    assert_eq!(
        doc.pointer("/spec/template/spec/volumes/0/configMap/defaultMode"),
        Some(&serde_json::json!(want))
    );
    // The quoted "0644" stays text.
    let env = r
        .chroma_container()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    assert_eq!(
        env.first().and_then(|e| e.value.as_deref()),
        Some("0644"),
        "quoted env value"
    );
}

fn unquoted(word: &str) -> RenderRequest {
    RenderRequest::new(fixture("yes-in-a-string-field")).set_string("mode", word)
}

#[rstest]
#[case::yes("yes")]
#[case::no("no")]
#[case::on("on")]
#[case::off("off")]
#[case::y("y")]
#[case::n("n")]
#[case::title_case_yes("Yes")]
#[case::upper_case_off("OFF")]
fn yaml_1_1_boolean_in_a_string_field_is_refused_naming_the_field(#[case] word: &str) {
    let err = render(unquoted(word)).expect_err("the API server refuses a boolean env value");
    let RenderError::Parse(ParseError::Typed { kind, path, .. }) = &err else {
        panic!("{word}: not a schema refusal: {err}")
    };
    assert_eq!(
        (kind.as_str(), path.as_str()),
        ("Pod", "spec.containers[0].env[1].value"),
        "{word}: {err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("boolean") && msg.contains(&format!("`{word}`")),
        "{word}: the message says neither the type nor the text: {msg}"
    );
}

#[test]
fn octal_text_in_a_string_field_is_refused_as_an_integer() {
    let err = render(unquoted("0644")).expect_err("the API server reads an integer there");
    let msg = err.to_string();
    assert!(
        msg.contains("spec.containers[0].env[1].value")
            && msg.contains("integer")
            && msg.contains("`0644`"),
        "{msg}"
    );
}

#[rstest]
#[case::a_word("hello")]
#[case::mixed_case_is_no_boolean_to_go_yaml("yEs")]
#[case::a_version("1.5.0")]
fn other_text_in_the_same_field_stays_text(#[case] word: &str) {
    let r = render(unquoted(word)).unwrap_or_else(|e| panic!("{word}: {e}"));
    let pod = r
        .objects
        .iter()
        .find_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .expect("the fixture renders a Pod");
    let env = pod
        .spec
        .as_ref()
        .map(|s| s.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    let values: Vec<Option<&str>> = env.iter().map(|e| e.value.as_deref()).collect();
    assert_eq!(values, [Some(word), Some(word)], "quoted and unquoted");
}

#[test]
fn the_same_word_quoted_is_a_string() {
    // The refusal above comes from the unquoted entry: without it, the quoted `yes` parses.
    let stream = unquoted("yes")
        .render_raw(&helm())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stream.contains("value: \"yes\"") && stream.contains("value: yes"),
        "the fixture renders both forms:\n{stream}"
    );
    let only_quoted: Vec<&str> = stream
        .lines()
        .take_while(|l| !l.contains("MODE_UNQUOTED"))
        .collect();
    let r = Rendered::parse(&only_quoted.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let env = r.documents[0]
        .pointer("/spec/containers/0/env")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        env,
        serde_json::json!([{"name": "MODE_QUOTED", "value": "yes"}])
    );
}
