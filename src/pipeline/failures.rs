//! `failures.tsv`: one row per input that failed, shared by every worker of an output folder.

use std::path::Path;
use std::time::Duration;

use super::JobReport;
use crate::error::{Error, FailureKind, Result};
use crate::resume::lock::Lock;

/// Updates `failures.tsv` in the output root: rows of inputs this run processed or failed again
/// are replaced, rows of other inputs (other workers, other shards, earlier runs) are kept. The
/// update is serialised between workers with a lock.
pub(crate) fn write_failures(
    output: &Path,
    report: &JobReport,
    lock_timeout: Duration,
) -> Result<()> {
    let path = output.join("failures.tsv");
    let lock_path = output.join(".failures.lock");
    let mut waited = Duration::ZERO;
    let _lock = loop {
        match Lock::acquire(&lock_path, lock_timeout)? {
            Ok(l) => break l,
            Err(_) if waited < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(100));
                waited += Duration::from_millis(100);
            }
            Err(busy) => {
                return Err(Error::video(
                    &lock_path,
                    FailureKind::Output,
                    format!("failures.tsv is locked by {}", busy.owner),
                ));
            }
        }
    };
    let row = |p: &Path, kind: &str, reason: &str, advice: &str| {
        format!(
            "{}\t{kind}\t{}\t{advice}\n",
            crate::sink::tsv_field(&p.to_string_lossy()),
            crate::sink::tsv_field(reason)
        )
    };
    let renewed: std::collections::HashSet<String> = report
        .succeeded
        .iter()
        .chain(report.failed.iter().map(|f| &f.path))
        .map(|p| crate::sink::tsv_field(&p.to_string_lossy()).into_owned())
        .collect();
    let mut rows: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').next().is_some_and(|p| !renewed.contains(p)))
        .map(|l| format!("{l}\n"))
        .collect();
    rows.extend(
        report
            .failed
            .iter()
            .map(|f| row(&f.path, f.kind.as_str(), &f.message, f.kind.advice())),
    );
    if rows.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let text = format!("path\tkind\treason\tadvice\n{}", rows.concat());
    crate::models::store::write_atomic(&path, text.as_bytes())
}
