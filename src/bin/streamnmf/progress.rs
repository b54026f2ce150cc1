//! Progress: a bar on a terminal, periodic log lines otherwise; and peak memory.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use streamnmf::BatchReport;

/// Shows rows, rows/s and the latest loss per row.
pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    last_line: Instant,
    rows: u64,
    quiet: bool,
}

impl Progress {
    /// `total_rows`, if known, gives the bar a length; `quiet` silences everything.
    pub fn new(total_rows: Option<u64>, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = match total_rows {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            start: Instant::now(),
            last_line: Instant::now(),
            rows: 0,
            quiet,
        }
    }

    pub fn batch(&mut self, r: &BatchReport) {
        self.rows += r.rows as u64;
        let per_row = r.loss / r.rows.max(1) as f64;
        match &self.bar {
            Some(bar) => {
                bar.set_position(self.rows);
                bar.set_message(format!("loss/row {per_row:.4e}"));
            }
            None if !self.quiet && self.last_line.elapsed() > Duration::from_secs(5) => {
                self.last_line = Instant::now();
                let secs = self.start.elapsed().as_secs_f64();
                let _ = writeln!(
                    std::io::stderr(),
                    "{} rows, {:.0} rows/s, loss/row {per_row:.4e}",
                    self.rows,
                    self.rows as f64 / secs
                );
            }
            None => {}
        }
    }

    pub fn rows(&mut self, n: u64) {
        self.rows += n;
        if let Some(bar) = &self.bar {
            bar.set_position(self.rows);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
