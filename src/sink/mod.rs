//! Writing results for one input: an uncompressed tar of JPEG chips and two TSV tables with the
//! research seed's names and columns, plus a JSON summary. Everything is written under temporary
//! names and renamed into place only when the input is complete; the summary is renamed last and is
//! the input's completion record.

pub mod annotate;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::analyze::AnalyzedFace;
use crate::error::{Error, Result};

pub const JPEG_QUALITY: u8 = 95;
pub const METADATA_HEADER: &str = "image_basename\twidth\theight\ttop\tleft\tbottom\tright\timg_width\timg_height\tconfidence\tframe\ttimestamp\tlx0\tly0\tlx1\tly1\tlx2\tly2\tlx3\tly3\tlx4\tly4";
pub const AGE_GENDER_HEADER: &str = "filename\tclassifier\tage\tgender\trace";
/// Every sampled frame, with or without faces, so frames without faces are not mistaken for
/// frames never looked at (needed for screen-time shares).
pub const SAMPLES_HEADER: &str = "frame\ttimestamp\tfaces";

/// A value made safe for a TSV field: tabs, newlines and backslashes are escaped as `\t`, `\n`,
/// `\r` and `\\` so every row stays one line with a fixed number of columns.
pub fn tsv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\t', '\n', '\r', '\\']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The final file names of one input's results.
#[derive(Debug, Clone)]
pub struct OutputPaths {
    pub dir: PathBuf,
    pub stem: String,
}

impl OutputPaths {
    pub fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.stem))
    }
    pub fn tar(&self) -> PathBuf {
        self.file("_chips.tar")
    }
    pub fn metadata(&self) -> PathBuf {
        self.file("_face_metadata.tsv")
    }
    pub fn age_gender(&self) -> PathBuf {
        self.file("_age_gender.tsv")
    }
    pub fn samples(&self) -> PathBuf {
        self.file("_sampled_frames.tsv")
    }
    pub fn summary(&self) -> PathBuf {
        self.file("_summary.json")
    }
    pub fn frames_dir(&self) -> PathBuf {
        self.file("_frames")
    }
    /// The temporary name of a final file.
    pub fn partial(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        path.with_file_name(name)
    }
}

/// Name of a chip in the tar (the seed's convention).
pub fn chip_name(stem: &str, frame: u64, timestamp: f64, face: usize) -> String {
    format!(
        "{stem}_frame_{frame}_second_{}_face{face}.jpg",
        timestamp.max(0.0).floor() as u64
    )
}

/// Streams one input's results into its temporary files.
pub struct ResultWriter {
    paths: OutputPaths,
    tar: tar::Builder<BufWriter<File>>,
    metadata: BufWriter<File>,
    age_gender: BufWriter<File>,
    samples: BufWriter<File>,
    classifiers: Vec<String>,
    pub faces: u64,
}

/// Opens an existing temporary file cut back to `len` bytes, positioned at its end.
fn reopen_at(path: &Path, len: u64) -> Result<BufWriter<File>> {
    use std::io::Seek;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let actual = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if actual < len {
        return Err(Error::Invalid(format!(
            "{}: shorter than its checkpoint; starting over",
            path.display()
        )));
    }
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.seek(std::io::SeekFrom::End(0))
        .map_err(|e| Error::io(path, e))?;
    Ok(BufWriter::with_capacity(1 << 16, f))
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|e| Error::io(path, e))
}

impl ResultWriter {
    /// Starts fresh result files, or — given a checkpoint's lengths and face count — reopens the
    /// temporary files of an interrupted run cut back to that checkpoint.
    pub fn open(
        paths: OutputPaths,
        classifiers: Vec<String>,
        resume: Option<([u64; 4], u64)>,
    ) -> Result<ResultWriter> {
        std::fs::create_dir_all(&paths.dir).map_err(|e| Error::io(&paths.dir, e))?;
        let files = [
            paths.tar(),
            paths.metadata(),
            paths.age_gender(),
            paths.samples(),
        ];
        let [tar, mut metadata, mut age_gender, mut samples] = match resume {
            Some((lengths, _)) => {
                let mut opened = Vec::with_capacity(4);
                for (p, len) in files.iter().zip(lengths) {
                    opened.push(reopen_at(&OutputPaths::partial(p), len)?);
                }
                opened
                    .try_into()
                    .map_err(|_| Error::Invalid("internal: four files".into()))?
            }
            None => {
                let mut created = Vec::with_capacity(4);
                for p in &files {
                    created.push(create(&OutputPaths::partial(p))?);
                }
                created
                    .try_into()
                    .map_err(|_| Error::Invalid("internal: four files".into()))?
            }
        };
        if resume.is_none() {
            for (w, header, p) in [
                (&mut metadata, METADATA_HEADER, &files[1]),
                (&mut age_gender, AGE_GENDER_HEADER, &files[2]),
                (&mut samples, SAMPLES_HEADER, &files[3]),
            ] {
                writeln!(w, "{header}").map_err(|e| Error::io(p, e))?;
            }
        }
        let mut tar = tar::Builder::new(tar);
        tar.mode(tar::HeaderMode::Deterministic);
        let faces = resume.map(|(_, f)| f).unwrap_or(0);
        Ok(ResultWriter {
            paths,
            tar,
            metadata,
            age_gender,
            samples,
            classifiers,
            faces,
        })
    }

    /// Flushes and syncs the temporary files and returns their lengths, for a checkpoint.
    pub fn sync(&mut self) -> Result<[u64; 4]> {
        let tar_path = self.paths.tar();
        let writers: [(&mut BufWriter<File>, PathBuf); 4] = [
            (self.tar.get_mut(), tar_path),
            (&mut self.metadata, self.paths.metadata()),
            (&mut self.age_gender, self.paths.age_gender()),
            (&mut self.samples, self.paths.samples()),
        ];
        let mut lengths = [0u64; 4];
        for (i, (w, p)) in writers.into_iter().enumerate() {
            w.flush().map_err(|e| Error::io(&p, e))?;
            w.get_ref().sync_data().map_err(|e| Error::io(&p, e))?;
            lengths[i] = w.get_ref().metadata().map_err(|e| Error::io(&p, e))?.len();
        }
        Ok(lengths)
    }

    /// Adds one frame's faces: a chip per face in the tar, a metadata row per face, an age/gender
    /// row per face and classifier. `label` names the frame in chip names (the stem for videos).
    pub fn add_frame(
        &mut self,
        label: &str,
        frame: u64,
        timestamp: f64,
        size: (usize, usize),
        faces: &[AnalyzedFace],
    ) -> Result<()> {
        writeln!(self.samples, "{frame}\t{timestamp:.6}\t{}", faces.len())
            .map_err(|e| Error::io(self.paths.samples(), e))?;
        for (i, f) in faces.iter().enumerate() {
            let name = chip_name(label, frame, timestamp, i);
            let jpeg = f.chip.image.encode_jpeg(JPEG_QUALITY)?;
            let mut header = tar::Header::new_gnu();
            header.set_size(jpeg.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            let tar_path = self.paths.tar();
            self.tar
                .append_data(&mut header, &name, &jpeg[..])
                .map_err(|e| Error::io(&tar_path, e))?;
            let [x1, y1, x2, y2] = f.face.clamped_bbox(size.0, size.1);
            let mut row = format!(
                "{}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{:.3}\t{}\t{}\t{:.5}\t{frame}\t{:.6}",
                tsv_field(&name),
                x2 - x1,
                y2 - y1,
                y1,
                x1,
                y2,
                x2,
                size.0,
                size.1,
                f.face.score,
                timestamp
            );
            for p in f.face.landmarks {
                row.push_str(&format!("\t{:.3}\t{:.3}", p[0], p[1]));
            }
            writeln!(self.metadata, "{row}").map_err(|e| Error::io(self.paths.metadata(), e))?;
            for (c, e) in self.classifiers.iter().zip(&f.estimates) {
                writeln!(
                    self.age_gender,
                    "{}\t{c}\t{:.4}\t{:.6}\t",
                    tsv_field(&name),
                    e.age,
                    e.female
                )
                .map_err(|e| Error::io(self.paths.age_gender(), e))?;
            }
            self.faces += 1;
        }
        Ok(())
    }

    /// Flushes and renames every file into place; the summary (the completion record) goes last.
    pub fn finish(self, summary: &serde_json::Value) -> Result<()> {
        let ResultWriter {
            paths,
            tar,
            mut metadata,
            mut age_gender,
            mut samples,
            ..
        } = self;
        let mut tar_file = tar.into_inner().map_err(|e| Error::io(paths.tar(), e))?;
        for (w, p) in [
            (&mut tar_file, paths.tar()),
            (&mut metadata, paths.metadata()),
            (&mut age_gender, paths.age_gender()),
            (&mut samples, paths.samples()),
        ] {
            w.flush().map_err(|e| Error::io(&p, e))?;
            w.get_ref().sync_all().map_err(|e| Error::io(&p, e))?;
        }
        for p in [
            paths.tar(),
            paths.metadata(),
            paths.age_gender(),
            paths.samples(),
        ] {
            std::fs::rename(OutputPaths::partial(&p), &p).map_err(|e| Error::io(&p, e))?;
        }
        let json = serde_json::to_vec_pretty(summary).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::models::store::write_atomic(&paths.summary(), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_names_follow_the_seed() {
        assert_eq!(
            chip_name("news", 250, 10.01, 2),
            "news_frame_250_second_10_face2.jpg"
        );
    }

    #[test]
    fn tsv_fields_are_escaped() {
        assert_eq!(tsv_field("a\tb\nc\\"), "a\\tb\\nc\\\\");
        assert_eq!(tsv_field("plain name.mp4"), "plain name.mp4");
    }
}
