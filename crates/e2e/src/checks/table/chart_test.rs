//! `chart-test`: the chart's own `helm test` hook, run the way the backend's cluster runs it.

use crate::backend::Backend;
use crate::checks::{About, Run, Runner, always, chart_test, exercised_everywhere};

pub const ABOUT: About = About { name: "chart-test", opt_in: false, applies: always, needs: &[] };

pub fn runner<B: Backend>() -> Runner<B> {
    Runner { exercised: exercised_everywhere, run: Run::Jobs(|backend, deployed, _, _| Box::pin(chart_test(backend, deployed))) }
}
