//! `own-pods`: the Services and the PodDisruptionBudget count the server's pods only, as their
//! controllers report it, after the backup, restore and test pods have run beside it.

use crate::backend::Backend;
use crate::checks::{About, Outcome, Run, Runner, always, own_pods};

pub const ABOUT: About = About { name: "own-pods", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner {
        exercised: |backend, _, _| backend.reports_selections(),
        run: Run::Jobs(|backend, deployed, expected, _| {
            Box::pin(async move {
                match backend.selections(deployed).await {
                    Err(e) => Outcome::Fail { reason: format!("reading what the Services and budgets select: {e}"), evidence: Vec::new(), log_tail: String::new() },
                    Ok(s) => match own_pods::verdict(&s, expected) {
                        Ok(detail) => Outcome::Pass { detail },
                        Err(own_pods::Finding::NothingElse(reason)) => Outcome::Skipped { reason },
                        Err(own_pods::Finding::Wrong(reason)) => Outcome::Fail { reason, evidence: Vec::new(), log_tail: String::new() },
                    },
                }
            })
        }),
    }
}
