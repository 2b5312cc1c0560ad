//! A finished unit's line (a deployment, an upgrade transition). On a terminal it goes above the
//! bar. Where indicatif cannot draw (a CI log, a pipe) the bar hides itself and would swallow
//! the line with it, leaving a silent log for the hours a matrix takes; there the line goes out
//! as a `tracing` event of target `e2e::progress`, which xtask shows by default.

use indicatif::ProgressBar;

/// `wanted`: the caller asked for progress (a run that hid its bar on purpose says nothing).
pub fn line(bar: &ProgressBar, wanted: bool, msg: String) {
    if !wanted {
        return;
    }
    if bar.is_hidden() {
        tracing::info!(target: "e2e::progress", "{msg}");
    } else {
        bar.println(msg);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(bar: &ProgressBar, wanted: bool) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("warn,e2e::progress=info")
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            line(bar, wanted, "✓ 1.5.9 basic (12.0s)".into())
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[rstest::rstest]
    #[case::a_bar_that_cannot_draw_logs_the_line(ProgressBar::hidden(), true, true)]
    #[case::a_run_that_asked_for_no_progress_logs_nothing(ProgressBar::hidden(), false, false)]
    fn where_the_bar_cannot_draw_the_line_still_reaches_the_log(
        #[case] bar: ProgressBar,
        #[case] wanted: bool,
        #[case] expected: bool,
    ) {
        let log = logged(&bar, wanted);
        assert_eq!(log.contains("✓ 1.5.9 basic (12.0s)"), expected, "{log:?}");
    }
}
