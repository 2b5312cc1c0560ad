//! Whole renders of a few canonical scenarios, so reviewers see manifest diffs. Random
//! Secret values and config checksums are redacted.

mod support;

use rstest::rstest;
use support::*;

#[rstest]
#[case::defaults_on_0_4_3("0.4.3", "defaults")]
#[case::token_x_chroma_token_on_0_5_0("0.5.0", "token-x-chroma-token")]
#[case::basic_auth_on_0_4_24("0.4.24", "basic-auth")]
#[case::defaults_on_1_5_0("1.5.0", "defaults")]
#[case::rust_config_on_1_5_0("1.5.0", "rust-config")]
#[case::labels_images_on_0_6_3("0.6.3", "labels-images")]
#[case::backup_pvc_on_0_6_3("0.6.3", "backup-pvc")]
#[case::restore_s3_on_1_5_0("1.5.0", "restore-s3")]
fn whole_render(#[case] version: &str, #[case] scenario: &str) {
    let case = suite().case(version, scenario);
    let (_, r) = case.accepted().expect("canonical scenarios render");
    let docs = redacted(r);
    insta::with_settings!({ snapshot_suffix => format!("{scenario}@{version}"), omit_expression => true }, {
        insta::assert_yaml_snapshot!(docs);
    });
}
