//! Helm hooks as the chart annotates its objects: the one place the `helm.sh/hook` and
//! `helm.sh/hook-weight` annotations are read, for every backend and check.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const HOOK: &str = "helm.sh/hook";
pub const HOOK_WEIGHT: &str = "helm.sh/hook-weight";

/// The hook events an object is annotated with (comma-separated in the annotation), trimmed;
/// empty when it is no hook.
pub fn events(meta: &ObjectMeta) -> Vec<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(HOOK))
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object runs on `event` (`post-install`, `pre-upgrade`, …).
pub fn runs_on(meta: &ObjectMeta, event: &str) -> bool {
    events(meta).contains(&event)
}

/// Whether `helm test` runs it: `test`, or `test-success`, the helm 2 spelling helm 3 and 4
/// still run.
pub fn is_test(meta: &ObjectMeta) -> bool {
    events(meta)
        .iter()
        .any(|e| *e == "test" || *e == "test-success")
}

/// Its `helm.sh/hook-weight` (helm runs lower weights first; 0 when absent or unreadable, as
/// helm treats it).
pub fn weight(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(HOOK_WEIGHT))
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[rstest::rstest]
    #[case::a_single_event(&[(HOOK, "post-install")], vec!["post-install"])]
    #[case::a_comma_separated_list_with_spaces(&[(HOOK, "pre-install, pre-upgrade")], vec!["pre-install", "pre-upgrade"])]
    #[case::no_annotation_is_no_hook(&[], vec![])]
    fn events_are_the_comma_separated_list(#[case] a: &[(&str, &str)], #[case] want: Vec<&str>) {
        assert_eq!(events(&meta(a)), want);
    }

    #[rstest::rstest]
    #[case::test(&[(HOOK, "test")], true)]
    #[case::helm_2_test_success(&[(HOOK, "pre-install,test-success")], true)]
    #[case::an_install_hook_is_no_test(&[(HOOK, "post-install")], false)]
    #[case::a_test_prefix_is_not_enough(&[(HOOK, "testing")], false)]
    fn test_hooks_are_test_or_test_success(#[case] a: &[(&str, &str)], #[case] want: bool) {
        assert_eq!(is_test(&meta(a)), want);
    }

    #[test]
    fn weight_defaults_to_zero_and_reads_negative_numbers() {
        assert_eq!(weight(&meta(&[])), 0);
        assert_eq!(weight(&meta(&[(HOOK_WEIGHT, " -5 ")])), -5);
        assert_eq!(weight(&meta(&[(HOOK_WEIGHT, "x")])), 0);
        assert!(runs_on(
            &meta(&[(HOOK, "post-install,post-upgrade")]),
            "post-upgrade"
        ));
    }
}
