//! `facetv-gpu merge OUTDIR`: one tidy table over every input of a results folder — one row per
//! face and classifier, with the face's metadata and video-level columns parsed from file names
//! (recording station and start time, e.g. `rtl-201701190940.ts.mp4` → station `rtl`, start
//! 2017-01-19 09:40) — as TSV and as Parquet (for R's `arrow` and pandas).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use regex::Regex;

use crate::error::{Error, Result};
use crate::evaluate::results::load;

/// Station = letters/digits before a dash or underscore, start = 12 (YYYYMMDDHHMM) or 14
/// (…SS) digits after it.
pub const DEFAULT_NAME_PATTERN: &str = r"^(?P<station>[A-Za-z0-9]+)[-_](?P<start>\d{12}(?:\d{2})?)";

/// One face × classifier row.
struct Row {
    input: String,
    station: Option<String>,
    start: Option<i64>,
    chip: String,
    frame: i64,
    timestamp: f64,
    bbox: [f64; 4],
    confidence: f64,
    classifier: String,
    age: f64,
    female: f64,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// Seconds since 1970 (local wall-clock time of the recording, no time zone) from YYYYMMDDHHMM[SS].
pub fn parse_start(digits: &str) -> Option<i64> {
    let n = |a: usize, b: usize| digits.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi) = (n(0, 4)?, n(4, 6)?, n(6, 8)?, n(8, 10)?, n(10, 12)?);
    let s = if digits.len() >= 14 { n(12, 14)? } else { 0 };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s)
}

/// ISO 8601 without time zone, to the millisecond when there is a fraction.
pub fn iso(seconds: f64) -> String {
    let whole = seconds.floor() as i64;
    let (y, m, d) = civil_from_days(whole.div_euclid(86400));
    let t = whole.rem_euclid(86400);
    let ms = ((seconds - whole as f64) * 1000.0).round() as i64;
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    if ms > 0 {
        format!("{base}.{ms:03}")
    } else {
        base
    }
}

pub struct MergeOutput {
    pub tsv: PathBuf,
    pub parquet: PathBuf,
    pub rows: usize,
}

pub fn merge(root: &Path, name_pattern: &str) -> Result<MergeOutput> {
    let pattern =
        Regex::new(name_pattern).map_err(|e| Error::Invalid(format!("--name-pattern: {e}")))?;
    let mut rows = Vec::new();
    for input in load(root)? {
        let summary: serde_json::Value =
            std::fs::read(input.dir.join(format!("{}_summary.json", input.stem)))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
        let input_path = summary["input"]["path"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| input.stem.clone());
        let file_name = Path::new(&input_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let caps = pattern.captures(&file_name);
        let station = caps
            .as_ref()
            .and_then(|c| c.name("station"))
            .map(|m| m.as_str().to_string());
        let start = caps
            .as_ref()
            .and_then(|c| c.name("start"))
            .and_then(|m| parse_start(m.as_str()));
        for f in &input.faces {
            for (classifier, (age, female)) in &f.estimates {
                rows.push(Row {
                    input: input_path.clone(),
                    station: station.clone(),
                    start,
                    chip: f.name.clone(),
                    frame: f.frame as i64,
                    timestamp: f.timestamp,
                    bbox: f.bbox,
                    confidence: f.confidence,
                    classifier: classifier.clone(),
                    age: *age,
                    female: *female,
                });
            }
        }
    }
    let tsv = root.join("merged_faces.tsv");
    let parquet = root.join("merged_faces.parquet");
    write_tsv(&tsv, &rows)?;
    write_parquet(&parquet, &rows)
        .map_err(|e| Error::Invalid(format!("{}: {e}", parquet.display())))?;
    Ok(MergeOutput {
        tsv,
        parquet,
        rows: rows.len(),
    })
}

const HEADER: &str = "input\tstation\tstart\ttime\tfilename\tframe\ttimestamp\tleft\ttop\tright\tbottom\tconfidence\tclassifier\tage\tgender";

fn write_tsv(path: &Path, rows: &[Row]) -> Result<()> {
    let tmp = crate::sink::OutputPaths::partial(path);
    let mut w = BufWriter::new(File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
    let mut text = String::with_capacity(256);
    writeln!(w, "{HEADER}").map_err(|e| Error::io(&tmp, e))?;
    for r in rows {
        text.clear();
        let start = r.start.map(|s| iso(s as f64)).unwrap_or_default();
        let time = r
            .start
            .map(|s| iso(s as f64 + r.timestamp))
            .unwrap_or_default();
        use std::fmt::Write as _;
        let _ = write!(
            text,
            "{}\t{}\t{start}\t{time}\t{}\t{}\t{:.6}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.5}\t{}\t{:.4}\t{:.6}",
            crate::sink::tsv_field(&r.input),
            r.station.as_deref().unwrap_or(""),
            crate::sink::tsv_field(&r.chip),
            r.frame,
            r.timestamp,
            r.bbox[0],
            r.bbox[1],
            r.bbox[2],
            r.bbox[3],
            r.confidence,
            r.classifier,
            r.age,
            r.female
        );
        writeln!(w, "{text}").map_err(|e| Error::io(&tmp, e))?;
    }
    w.flush().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn write_parquet(path: &Path, rows: &[Row]) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let schema = Arc::new(parse_message_type(
        "message faces {
            REQUIRED BYTE_ARRAY input (UTF8);
            OPTIONAL BYTE_ARRAY station (UTF8);
            OPTIONAL INT64 start (TIMESTAMP(MILLIS,false));
            OPTIONAL INT64 time (TIMESTAMP(MILLIS,false));
            REQUIRED BYTE_ARRAY filename (UTF8);
            REQUIRED INT64 frame;
            REQUIRED DOUBLE timestamp;
            REQUIRED DOUBLE left;
            REQUIRED DOUBLE top;
            REQUIRED DOUBLE right;
            REQUIRED DOUBLE bottom;
            REQUIRED DOUBLE confidence;
            REQUIRED BYTE_ARRAY classifier (UTF8);
            REQUIRED DOUBLE age;
            REQUIRED DOUBLE gender;
        }",
    )?);
    let tmp = crate::sink::OutputPaths::partial(path);
    let mut writer = SerializedFileWriter::new(
        File::create(&tmp)?,
        schema,
        Arc::new(WriterProperties::builder().build()),
    )?;
    let mut group = writer.next_row_group()?;
    let text = |f: &dyn Fn(&Row) -> &str| -> Vec<ByteArray> {
        rows.iter().map(|r| ByteArray::from(f(r))).collect()
    };
    let optional_text = |f: &dyn Fn(&Row) -> Option<&str>| -> (Vec<ByteArray>, Vec<i16>) {
        (
            rows.iter()
                .filter_map(|r| f(r).map(ByteArray::from))
                .collect(),
            rows.iter().map(|r| f(r).is_some() as i16).collect(),
        )
    };
    let optional_ms = |f: &dyn Fn(&Row) -> Option<i64>| -> (Vec<i64>, Vec<i16>) {
        (
            rows.iter().filter_map(f).collect(),
            rows.iter().map(|r| f(r).is_some() as i16).collect(),
        )
    };
    let doubles = |f: &dyn Fn(&Row) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let mut column = 0;
    while let Some(mut col) = group.next_column()? {
        match column {
            0 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&text(&|r| &r.input), None, None)?;
            }
            1 => {
                let (v, d) = optional_text(&|r| r.station.as_deref());
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&d), None)?;
            }
            2 => {
                let (v, d) = optional_ms(&|r| r.start.map(|s| s * 1000));
                col.typed::<Int64Type>().write_batch(&v, Some(&d), None)?;
            }
            3 => {
                let (v, d) = optional_ms(&|r| {
                    r.start
                        .map(|s| s * 1000 + (r.timestamp * 1000.0).round() as i64)
                });
                col.typed::<Int64Type>().write_batch(&v, Some(&d), None)?;
            }
            4 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&text(&|r| &r.chip), None, None)?;
            }
            5 => {
                col.typed::<Int64Type>().write_batch(
                    &rows.iter().map(|r| r.frame).collect::<Vec<_>>(),
                    None,
                    None,
                )?;
            }
            6 => {
                col.typed::<DoubleType>()
                    .write_batch(&doubles(&|r| r.timestamp), None, None)?;
            }
            7..=10 => {
                let k = column - 7;
                col.typed::<DoubleType>()
                    .write_batch(&doubles(&|r| r.bbox[k]), None, None)?;
            }
            11 => {
                col.typed::<DoubleType>()
                    .write_batch(&doubles(&|r| r.confidence), None, None)?;
            }
            12 => {
                col.typed::<ByteArrayType>()
                    .write_batch(&text(&|r| &r.classifier), None, None)?;
            }
            13 => {
                col.typed::<DoubleType>()
                    .write_batch(&doubles(&|r| r.age), None, None)?;
            }
            _ => {
                col.typed::<DoubleType>()
                    .write_batch(&doubles(&|r| r.female), None, None)?;
            }
        }
        col.close()?;
        column += 1;
    }
    group.close()?;
    writer.close()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_and_start_from_a_broadcast_file_name() {
        let re = Regex::new(DEFAULT_NAME_PATTERN).unwrap();
        let c = re.captures("rtl-201701190940.ts.mp4").unwrap();
        assert_eq!(&c["station"], "rtl");
        let start = parse_start(&c["start"]).unwrap();
        assert_eq!(iso(start as f64), "2017-01-19T09:40:00");
        assert_eq!(iso(start as f64 + 3725.5), "2017-01-19T10:42:05.500");
        assert_eq!(parse_start("201713010000"), None, "month 13");
        // across a leap day and a year end
        assert_eq!(
            iso(parse_start("20200228235959").unwrap() as f64 + 1.0),
            "2020-02-29T00:00:00"
        );
        assert_eq!(
            iso(parse_start("20191231235959").unwrap() as f64 + 1.0),
            "2020-01-01T00:00:00"
        );
    }
}
