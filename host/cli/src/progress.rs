//! Progress bars on stderr for a run: one spinner per table, fed by the library's
//! [`Progress`] callbacks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weir_ingest::TableReport;
use weir_ingest::progress::{Activity, Progress};
use weir_runtime::terminal::escape;

/// One spinner per table, drawn on stderr when `visible`; notices on stderr; and, for a
/// following run, each pass's summary on stdout (a JSON array per line with `json`).
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    passes_as_json: bool,
}

impl Bars {
    pub fn new(visible: bool) -> Bars {
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            passes_as_json: false,
        }
    }

    /// Prints each pass of a following run as JSON.
    pub fn printing_passes(mut self, json: bool) -> Bars {
        self.passes_as_json = json;
        self
    }

    fn with(&self, report: &TableReport, f: impl FnOnce(&ProgressBar)) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(&report.destination)
        {
            f(bar);
        }
    }
}

impl Progress for Bars {
    fn started(&self, report: &TableReport) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<32} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(escape(&report.destination).into_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(report.destination.clone(), bar);
        }
    }

    fn update(&self, report: &TableReport, activity: Activity) {
        self.with(report, |bar| {
            bar.set_message(match activity {
                Activity::Reading { partitions: 0 } => {
                    format!("{} rows, {} pages, reading", report.rows_read, report.pages)
                }
                Activity::Reading { partitions } => {
                    format!(
                        "{} rows, {} pages, reading {partitions} partitions",
                        report.rows_read, report.pages
                    )
                }
                Activity::ReadingDeletes => format!("{} rows, reading deletes", report.rows_read),
                Activity::Committing { rows } => format!("committing {rows} rows"),
            })
        });
    }

    fn notice(&self, message: &str) {
        let line = format!("weir: {}", escape(message));
        // Above the bars when they are drawn, plain on stderr otherwise.
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn pass_finished(&self, reports: &[TableReport]) {
        if self.passes_as_json {
            println!("{}", serde_json::to_string(reports).unwrap_or_default());
        } else if reports.iter().any(|r| r.rows_read > 0 || r.error.is_some()) {
            crate::summary::print_summary(reports);
        }
    }

    fn finished(&self, report: &TableReport) {
        self.with(report, |bar| {
            bar.finish_with_message(match &report.error {
                None => format!("done: {} rows, {} commits", report.rows_read, report.commits),
                Some(e) => format!("failed: {}", escape(e.lines().next().unwrap_or_default())),
            })
        });
    }
}
