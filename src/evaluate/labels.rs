//! Hand-coded labels. A tab-separated file with a header; columns (case-insensitive):
//!
//! - which face: `filename` (a chip name as in the tar and tables — label chips taken from the
//!   tars), or `image` (a photo's file name or a video's result stem) with `face` (the index in
//!   that frame) and, for videos, `frame`; or `image` (+ `frame`) with a box `x1 y1 x2 y2`,
//!   matched to the detected face it overlaps most (IoU ≥ 0.5);
//! - `age` in years, or `age_band` such as `30-39` or `60+`;
//! - `gender`: `female`/`f`/`woman`, `male`/`m`/`man` (anything else: not coded);
//! - `group` (optional): any grouping for the confusion tables (e.g. skin tone, channel).

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum FaceRef {
    Chip(String),
    Index {
        image: String,
        frame: Option<u64>,
        face: usize,
    },
    Box {
        image: String,
        frame: Option<u64>,
        bbox: [f64; 4],
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub face: FaceRef,
    /// True age range in years, inclusive (equal ends for an exact age).
    pub age: Option<(f64, f64)>,
    pub female: Option<bool>,
    pub group: String,
}

pub fn parse_band(s: &str) -> Option<(f64, f64)> {
    let s = s.trim();
    if let Some(lo) = s.strip_suffix('+') {
        return Some((lo.trim().parse().ok()?, 120.0));
    }
    if let Some((a, b)) = s.split_once('-') {
        return Some((a.trim().parse().ok()?, b.trim().parse().ok()?));
    }
    let v: f64 = s.parse().ok()?;
    Some((v, v))
}

fn parse_gender(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "female" | "f" | "woman" | "w" => Some(true),
        "male" | "m" | "man" => Some(false),
        _ => None,
    }
}

pub fn read(path: &Path) -> Result<Vec<Label>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |n: &str| header.iter().position(|h| h == n);
    let bad =
        |line: usize, m: String| Error::Invalid(format!("{}: line {line}: {m}", path.display()));
    let mut labels = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let f: Vec<&str> = line.split('\t').collect();
        let get = |n: &str| {
            col(n)
                .and_then(|k| f.get(k))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let frame = get("frame")
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(line_no, format!("frame '{v}' is not a number")))
            })
            .transpose()?;
        let face = if let Some(chip) = get("filename") {
            FaceRef::Chip(chip.to_string())
        } else if let Some(image) = get("image") {
            if let Some(k) = get("face") {
                FaceRef::Index {
                    image: image.into(),
                    frame,
                    face: k
                        .parse()
                        .map_err(|_| bad(line_no, format!("face '{k}' is not a number")))?,
                }
            } else {
                let mut b = [0f64; 4];
                for (j, c) in ["x1", "y1", "x2", "y2"].iter().enumerate() {
                    b[j] = get(c).and_then(|v| v.parse().ok()).ok_or_else(|| {
                        bad(
                            line_no,
                            format!("needs 'face' or a box x1 y1 x2 y2 ('{c}' missing)"),
                        )
                    })?;
                }
                FaceRef::Box {
                    image: image.into(),
                    frame,
                    bbox: b,
                }
            }
        } else {
            return Err(bad(
                line_no,
                "needs a 'filename' (chip name) or an 'image' column".into(),
            ));
        };
        let age = match (get("age"), get("age_band")) {
            (Some(a), _) | (None, Some(a)) => Some(parse_band(a).ok_or_else(|| {
                bad(
                    line_no,
                    format!("age '{a}' is neither a number nor a band like 30-39 or 60+"),
                )
            })?),
            _ => None,
        };
        labels.push(Label {
            face,
            age,
            female: get("gender").and_then(parse_gender),
            group: get("group").unwrap_or("all").to_string(),
        });
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_ages() {
        assert_eq!(parse_band("30-39"), Some((30.0, 39.0)));
        assert_eq!(parse_band("60+"), Some((60.0, 120.0)));
        assert_eq!(parse_band("42"), Some((42.0, 42.0)));
        assert_eq!(parse_band("old"), None);
    }

    #[test]
    fn reads_the_three_ways_to_name_a_face() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.tsv");
        std::fs::write(&p, "filename\timage\tframe\tface\tx1\ty1\tx2\ty2\tage\tgender\tgroup\nclip_frame_0_second_0_face1.jpg\t\t\t\t\t\t\t\t34\tF\ta\n\tclip\t30\t0\t\t\t\t\t60+\tmale\t\n\tphoto.jpg\t\t\t10\t20\t50\t70\t\t\tb\n").unwrap();
        let l = read(&p).unwrap();
        assert_eq!(
            l[0].face,
            FaceRef::Chip("clip_frame_0_second_0_face1.jpg".into())
        );
        assert_eq!(
            (l[0].age, l[0].female, l[0].group.as_str()),
            (Some((34.0, 34.0)), Some(true), "a")
        );
        assert_eq!(
            l[1].face,
            FaceRef::Index {
                image: "clip".into(),
                frame: Some(30),
                face: 0
            }
        );
        assert_eq!((l[1].age, l[1].female), (Some((60.0, 120.0)), Some(false)));
        assert_eq!(
            l[2].face,
            FaceRef::Box {
                image: "photo.jpg".into(),
                frame: None,
                bbox: [10.0, 20.0, 50.0, 70.0]
            }
        );
        assert_eq!(l[2].female, None);
    }
}
