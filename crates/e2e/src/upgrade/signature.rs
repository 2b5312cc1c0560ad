//! What an expected failure looks like. A row of fixtures/upgrades.yaml that expects B to
//! fail names how: which checks fail on B and/or a substring of what B said (its log, an
//! HTTP body it answered, the upgrade's error). A failure for any other reason — an invalid
//! pod spec, a readiness timeout, a Python environment that did not build — is a mismatch,
//! not the measured Chroma behaviour.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::checks::CheckName;

use super::verdict::Verdict;

/// How an expected failure shows itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// Exactly these checks fail on B (empty: not part of the signature).
    pub checks: BTreeSet<CheckName>,
    /// A substring of what B said: its log, an HTTP body, the upgrade error.
    pub says: Option<String>,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.checks.is_empty() {
            parts.push(format!("failing checks [{}]", names(&self.checks)));
        }
        if let Some(s) = &self.says {
            parts.push(format!("B saying {s:?}"));
        }
        f.write_str(&parts.join(" and "))
    }
}

fn names(c: &BTreeSet<CheckName>) -> String {
    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

impl Signature {
    /// Builds one from the fixture's fields; `Err` says what is missing or wrong.
    pub fn new(
        expect: Verdict,
        checks: &[String],
        says: Option<String>,
    ) -> Result<Signature, String> {
        let checks = checks
            .iter()
            .map(|c| c.parse::<CheckName>())
            .collect::<Result<BTreeSet<_>, _>>()?;
        if let Some(s) = &says
            && s.trim().is_empty()
        {
            return Err("`says` is empty; give a substring of B's log or answer".into());
        }
        if checks.is_empty() && says.is_none() {
            return Err("a signature needs `checks` (the checks that fail on B) and/or `says` (a substring of B's log or answer)".into());
        }
        match expect {
            Verdict::ChecksFailed if checks.is_empty() => Err("`expect: checks-failed` must name the failing checks in `checks`".into()),
            Verdict::Incompatible if says.is_none() => Err("`expect: incompatible` must quote what B said in `says` (no check runs when B cannot start)".into()),
            Verdict::Survived | Verdict::SetupFailed => Err(format!("`expect: {}` is not a failure; a signature makes no sense there", expect.as_str())),
            _ => Ok(Signature { checks, says }),
        }
    }

    /// `Ok(what matched)` when a run with these failing checks and this output shows the
    /// signature, else `Err(what was seen instead)`.
    pub fn matches(
        &self,
        failed: &BTreeSet<CheckName>,
        observed: &[String],
    ) -> Result<String, String> {
        let mut seen = Vec::new();
        let mut problems = Vec::new();
        if !self.checks.is_empty() {
            if *failed == self.checks {
                seen.push(format!("failing checks [{}]", names(failed)));
            } else {
                problems.push(format!(
                    "the failing checks were [{}], not [{}]",
                    names(failed),
                    names(&self.checks)
                ));
            }
        }
        if let Some(s) = &self.says {
            match observed
                .iter()
                .flat_map(|o| o.lines())
                .find(|l| l.contains(s.as_str()))
            {
                Some(line) => seen.push(format!("B said: {}", line.trim())),
                None => problems.push(format!(
                    "{s:?} appears nowhere in B's log, its answers or the upgrade's error"
                )),
            }
        }
        if problems.is_empty() {
            Ok(seen.join("; "))
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Whether a run agrees with what the matrix expects: `None` when it does, else one
/// sentence naming what was expected (verdict and signature) and what was seen.
pub fn mismatch(
    expect: Verdict,
    signature: Option<&Signature>,
    verdict: Verdict,
    summary: &str,
    failed: &BTreeSet<CheckName>,
    observed: &[String],
) -> Option<String> {
    let wanted = match signature {
        Some(s) => format!("{} with {s}", expect.as_str()),
        None => expect.as_str().to_string(),
    };
    if verdict != expect {
        return Some(format!(
            "expected {wanted}; saw {} ({summary})",
            verdict.as_str()
        ));
    }
    let sig = signature?;
    sig.matches(failed, observed).err().map(|why| {
        format!(
            "expected {wanted}; saw {} for another cause: {why} ({summary})",
            verdict.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(expect: Verdict, checks: &[&str], says: Option<&str>) -> Signature {
        Signature::new(
            expect,
            &checks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            says.map(str::to_string),
        )
        .unwrap()
    }

    fn set(c: &[CheckName]) -> BTreeSet<CheckName> {
        c.iter().copied().collect()
    }

    fn c(name: &str) -> CheckName {
        name.parse().unwrap()
    }

    fn writes() -> [CheckName; 3] {
        [c("payload"), c("persistence"), c("reset")]
    }

    #[test]
    fn the_measured_compaction_failure_matches() {
        let s = sig(
            Verdict::ChecksFailed,
            &["payload", "persistence", "reset"],
            Some("Failed to apply logs"),
        );
        let seen = s.matches(&set(&writes()), &["INFO ok\nERROR Error in compaction: Failed to apply logs to the metadata segment".into()]).unwrap();
        assert!(
            seen.contains("failing checks [payload, persistence, reset]")
                && seen.contains("B said: ERROR Error in compaction"),
            "{seen}"
        );
    }

    #[test]
    fn another_set_of_failing_checks_is_another_cause() {
        let s = sig(
            Verdict::ChecksFailed,
            &["payload", "persistence", "reset"],
            None,
        );
        let e = s
            .matches(
                &set(&[c("payload"), c("persistence"), c("reset"), c("auth")]),
                &[],
            )
            .unwrap_err();
        assert!(
            e.contains("[auth, payload, persistence, reset], not [payload, persistence, reset]"),
            "{e}"
        );
        assert!(
            s.matches(&set(&[c("payload")]), &[]).is_err(),
            "a subset is not the signature either"
        );
    }

    #[test]
    fn the_quoted_text_must_appear_somewhere_b_said_it() {
        let s = sig(
            Verdict::Incompatible,
            &[],
            Some("no such column: collections.topic"),
        );
        let e = s
            .matches(
                &BTreeSet::new(),
                &["the rendered release cannot run: volumeMount `x` has no volume".into()],
            )
            .unwrap_err();
        assert!(
            e.contains("\"no such column: collections.topic\" appears nowhere"),
            "{e}"
        );
        assert!(
            s.matches(
                &BTreeSet::new(),
                &["500 OperationalError('no such column: collections.topic')".into()]
            )
            .is_ok()
        );
    }

    #[test]
    fn an_expected_failure_for_another_cause_is_a_mismatch_naming_both() {
        let s = sig(
            Verdict::Incompatible,
            &[],
            Some("range start index 10 out of range"),
        );
        let m = mismatch(
            Verdict::Incompatible,
            Some(&s),
            Verdict::Incompatible,
            "1.0.0 did not start: the rendered release cannot run",
            &BTreeSet::new(),
            &["the rendered release cannot run".into()],
        )
        .unwrap();
        assert!(m.starts_with("expected incompatible with B saying \"range start index 10 out of range\"; saw incompatible for another cause"), "{m}");
        assert!(m.contains("the rendered release cannot run"), "{m}");
    }

    #[test]
    fn another_verdict_is_a_mismatch() {
        let s = sig(Verdict::ChecksFailed, &["payload"], None);
        let m = mismatch(
            Verdict::ChecksFailed,
            Some(&s),
            Verdict::Incompatible,
            "B did not start",
            &BTreeSet::new(),
            &[],
        )
        .unwrap();
        assert_eq!(
            m,
            "expected checks-failed with failing checks [payload]; saw incompatible (B did not start)"
        );
    }

    #[test]
    fn the_expected_failure_with_its_signature_is_no_mismatch() {
        let s = sig(Verdict::Incompatible, &[], Some("KeyError('_type')"));
        assert_eq!(
            mismatch(
                Verdict::Incompatible,
                Some(&s),
                Verdict::Incompatible,
                "",
                &BTreeSet::new(),
                &["500 KeyError('_type')".into()]
            ),
            None
        );
        assert_eq!(
            mismatch(
                Verdict::Survived,
                None,
                Verdict::Survived,
                "",
                &BTreeSet::new(),
                &[]
            ),
            None
        );
    }

    #[rstest::rstest]
    #[case::no_checks_and_no_text(Verdict::DataLost, &[], None, "needs `checks`")]
    #[case::checks_failed_without_checks(Verdict::ChecksFailed, &[], Some("x"), "must name the failing checks")]
    #[case::incompatible_without_text(Verdict::Incompatible, &["auth"], None, "must quote what B said")]
    #[case::an_unknown_check(Verdict::ChecksFailed, &["persist"], None, "unknown check `persist`")]
    #[case::an_empty_quote(Verdict::Incompatible, &[], Some("  "), "`says` is empty")]
    #[case::a_signature_on_survived(Verdict::Survived, &["auth"], None, "not a failure")]
    fn a_bad_signature_is_refused(
        #[case] expect: Verdict,
        #[case] checks: &[&str],
        #[case] says: Option<&str>,
        #[case] why: &str,
    ) {
        let e = Signature::new(
            expect,
            &checks.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            says.map(str::to_string),
        )
        .unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}
