//! The image-level core shared by every command: detect → align → classify on a batch of frames.

use std::sync::Arc;

use crate::align::margin::{margin_crop, MARGIN};
use crate::align::{chip_from_frame, Affine, Chip, CHIP_SIZE};
use crate::classify::crop::CropConvention;
use crate::classify::{AgeGender, AgeGenderModel, OnnxAgeGender};
use crate::decode::{FrameImage, Nvdec, SampledFrame};
use crate::detect::{DetectOptions, Detector, Face, OnnxDetector};
use crate::error::{Error, Result};
use crate::frames::{Frames, HostFrames};
use crate::gpu::frames::{DeviceFrame, DevicePlane};
use crate::image::BgrImage;
use crate::models::{Manifest, ModelStore, Role};
use crate::runtime::providers::Provider;
use crate::runtime::SessionOptions;

/// One face with its chip and one estimate per classifier and crop convention (in
/// `Analyzer::classifier_names` order).
#[derive(Clone, Debug)]
pub struct AnalyzedFace {
    pub face: Face,
    pub chip: Chip,
    pub estimates: Vec<AgeGender>,
}

/// Every model of a run, split by stage so the pipeline can run the stages on their own threads:
/// `finder` (detect → align) and `classifier` (age/gender on the chips).
pub struct Analyzer {
    pub finder: FaceFinder,
    pub classifier: FaceClassifier,
    /// Hashes of every model in use, `(name, sha256)`, for the run's records.
    pub model_hashes: Vec<(String, String)>,
    /// Requested optional models that are not installed (reported once by the caller).
    pub missing_optional: Vec<String>,
    /// Where the models run.
    pub provider: Provider,
    /// The GPU pipeline's device resources, held here (the last field, dropped last) so the
    /// models' streams outlive their sessions.
    _plane: Option<Arc<DevicePlane>>,
}

impl Analyzer {
    /// Where the models run, as every summary records it: `cpu` or `cuda:N`.
    pub fn backend(&self) -> String {
        self.gpu()
            .map_or_else(|| "cpu".into(), |device| format!("cuda:{device}"))
    }

    /// The GPU of a GPU pipeline: its videos are decoded there with NVDEC where possible.
    pub fn gpu(&self) -> Option<usize> {
        match self.provider {
            Provider::Cpu => None,
            Provider::Gpu { device, .. } => Some(device),
        }
    }

    /// How this pipeline decodes: NVDEC on its GPU, sampled frames left there where the finder
    /// takes them (`FaceFinder::device_plane`); `None` on the CPU.
    pub fn nvdec(&self) -> Option<Nvdec> {
        self.gpu().map(|device| Nvdec {
            device,
            keep: self.finder.device_plane(),
        })
    }

    /// How results made by these models are labelled (`device` in the recorded options): the
    /// placements of all models, e.g. `cpu`, `tensorrt-fp16`, or `tensorrt-fp16+cuda` when one
    /// model fell back to the CUDA provider.
    pub fn device_label(&self) -> String {
        let mut labels: Vec<&str> = Vec::new();
        let all = std::iter::once(self.finder.detector.placement())
            .chain(self.classifier.models.iter().map(|m| m.placement()));
        for label in all.map(|p| p.label()) {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels.join("+")
    }
}

/// The detect and align stage.
pub struct FaceFinder {
    pub detector: Box<dyn Detector>,
    /// Also cut the margin crops (some classifier runs with the margin convention).
    margins: bool,
    /// Where frames left in GPU memory are processed (a GPU pipeline whose kernels loaded).
    plane: Option<Arc<DevicePlane>>,
    detect_s: f64,
    align_s: f64,
}

/// The classify stage: every age/gender model with every crop convention.
pub struct FaceClassifier {
    pub models: Vec<Box<dyn AgeGenderModel>>,
    /// The crop conventions every model runs with.
    pub crops: Vec<CropConvention>,
    classify_s: f64,
}

/// The faces found on a batch of frames with their crops, on their way to the classifiers.
pub struct FoundFaces {
    pub faces: Vec<Vec<Face>>,
    pub chips: Vec<Vec<Chip>>,
    /// Margin crops in face order (empty unless a margin convention is in use).
    pub margins: Vec<BgrImage>,
}

/// Accumulated wall time per stage.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimings {
    pub detect_s: f64,
    pub align_s: f64,
    pub classify_s: f64,
}

#[derive(Clone, Debug)]
pub struct ModelChoice {
    pub detector: String,
    /// Age/gender models to run; `None` = every default one that is installed.
    pub classifiers: Option<Vec<String>>,
    /// Crop conventions for the age/gender models (default: aligned, the seed's).
    pub crops: Vec<CropConvention>,
}

impl Default for ModelChoice {
    fn default() -> Self {
        ModelChoice {
            detector: "retinaface_mnet025".into(),
            classifiers: None,
            crops: vec![CropConvention::Aligned],
        }
    }
}

impl Analyzer {
    pub fn open(
        manifest: &Manifest,
        store: &ModelStore,
        choice: &ModelChoice,
        detect: DetectOptions,
        session: SessionOptions,
    ) -> Result<Analyzer> {
        let det_spec = manifest
            .by_role(Role::Detector)
            .find(|m| m.name == choice.detector)
            .ok_or_else(|| {
                let known: Vec<&str> = manifest
                    .by_role(Role::Detector)
                    .map(|m| m.name.as_str())
                    .collect();
                Error::Invalid(format!(
                    "unknown detector '{}'; detectors: {}",
                    choice.detector,
                    known.join(", ")
                ))
            })?;
        if det_spec.role != Role::Detector {
            return Err(Error::Invalid(format!(
                "'{}' is not a detector",
                choice.detector
            )));
        }
        let (det_path, det_sha) = store.verified(det_spec)?;
        let mut model_hashes = vec![(det_spec.name.clone(), det_sha)];
        let mut plane = match session.provider {
            Provider::Cpu => None,
            Provider::Gpu { device, .. } => match DevicePlane::open(device) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(
                        "GPU {device}: sampled frames go through the host (our kernels cannot run: {e})"
                    );
                    None
                }
            },
        };
        // Each model on its own stream; the detector on the one the kernels feeding it run on.
        let on_stream = |stream: Option<usize>| SessionOptions {
            compute_stream: stream,
            ..session
        };
        let detector = Box::new(OnnxDetector::open(
            det_spec,
            &det_path,
            detect,
            on_stream(plane.as_ref().map(|p| p.detector_stream())),
        )?);
        let (names, explicit): (Vec<String>, bool) = match &choice.classifiers {
            Some(list) => (list.clone(), true),
            None => (
                manifest
                    .by_role(Role::AgeGender)
                    .filter(|m| m.default)
                    .map(|m| m.name.clone())
                    .collect(),
                false,
            ),
        };
        let mut classifiers: Vec<Box<dyn AgeGenderModel>> = Vec::new();
        let mut default_crops: Vec<CropConvention> = Vec::new();
        let mut missing_optional = Vec::new();
        for name in names {
            let spec = manifest.get(&name)?;
            if spec.role != Role::AgeGender {
                return Err(Error::Invalid(format!(
                    "'{name}' is not an age/gender model"
                )));
            }
            let path = store.path_of(spec);
            if !path.exists() && spec.optional && !explicit {
                missing_optional.push(name);
                continue;
            }
            let (path, sha) = store.verified(spec)?;
            model_hashes.push((spec.name.clone(), sha));
            let stream = plane.as_mut().map(|p| p.model_stream()).transpose()?;
            classifiers.push(Box::new(OnnxAgeGender::open(
                spec,
                &path,
                on_stream(stream),
            )?));
            let crop = spec.crop.unwrap_or(CropConvention::Aligned);
            if !default_crops.contains(&crop) {
                default_crops.push(crop);
            }
        }
        if default_crops.is_empty() {
            default_crops.push(CropConvention::Aligned);
        }
        let crops = if choice.crops.is_empty() {
            default_crops
        } else {
            choice.crops.clone()
        };
        let plane = plane.map(Arc::new);
        Ok(Analyzer {
            finder: FaceFinder::new(
                detector,
                crops.contains(&CropConvention::Margin),
                plane.clone(),
            ),
            classifier: FaceClassifier {
                models: classifiers,
                crops,
                classify_s: 0.0,
            },
            model_hashes,
            provider: session.provider,
            missing_optional,
            _plane: plane,
        })
    }

    pub fn classifier_names(&self) -> Vec<String> {
        self.classifier.names()
    }

    /// Detects, aligns and classifies every face of every frame, one stage after the other.
    pub fn analyze(&mut self, frames: &[&BgrImage]) -> Result<Vec<Vec<AnalyzedFace>>> {
        let found = self.finder.find(&mut HostFrames::new(frames))?;
        self.classifier.classify(found)
    }

    /// Time spent in each stage since the analyzer was opened.
    pub fn timings(&self) -> StageTimings {
        StageTimings {
            detect_s: self.finder.detect_s,
            align_s: self.finder.align_s,
            classify_s: self.classifier.classify_s,
        }
    }
}

impl FaceFinder {
    /// `margins`: also cut margin crops; `plane`: where frames left in GPU memory go.
    pub fn new(
        detector: Box<dyn Detector>,
        margins: bool,
        plane: Option<Arc<DevicePlane>>,
    ) -> FaceFinder {
        FaceFinder {
            detector,
            margins,
            plane,
            detect_s: 0.0,
            align_s: 0.0,
        }
    }

    /// Detects every face of every frame and cuts its chip (and margin crop when needed), where
    /// the frames are (host or GPU memory).
    pub fn find(&mut self, frames: &mut dyn Frames) -> Result<FoundFaces> {
        let t0 = std::time::Instant::now();
        let faces = self.detector.detect(frames)?;
        let t1 = std::time::Instant::now();
        let wanted = chip_matrices(&faces);
        let images = frames.chips(&wanted)?;
        if images.len() != wanted.len() {
            return Err(Error::Invalid(format!(
                "{} chips cut for {} faces",
                images.len(),
                wanted.len()
            )));
        }
        let mut images = images.into_iter();
        let mut matrices = wanted.iter();
        let chips: Vec<Vec<Chip>> = faces
            .iter()
            .map(|fs| {
                fs.iter()
                    .zip(images.by_ref())
                    .zip(matrices.by_ref())
                    .map(|((_, image), (_, m))| Chip {
                        image,
                        frame_to_chip: *m,
                    })
                    .collect()
            })
            .collect();
        let mut margins = Vec::new();
        if self.margins {
            for (i, fs) in faces.iter().enumerate() {
                let frame = frames.host(i).ok_or_else(|| {
                    Error::Invalid("margin crops need the frames in host memory".into())
                })?;
                margins.extend(fs.iter().map(|f| margin_crop(frame, f.bbox, MARGIN)));
            }
        }
        self.detect_s += (t1 - t0).as_secs_f64();
        self.align_s += t1.elapsed().as_secs_f64();
        Ok(FoundFaces {
            faces,
            chips,
            margins,
        })
    }

    /// `find` on sampled frames: where they are when all of them are in this pipeline's GPU
    /// memory, else in host memory (frames on the GPU copied there).
    pub fn find_sampled(&mut self, batch: &[SampledFrame]) -> Result<FoundFaces> {
        let plane = self.device_plane();
        with_frames(plane.as_deref(), batch, |frames| self.find(frames))
    }

    /// Where `find_sampled` processes frames left in GPU memory: a GPU pipeline whose kernels
    /// loaded, unless margin crops (cut on the host) are wanted.
    pub fn device_plane(&self) -> Option<Arc<DevicePlane>> {
        self.plane.clone().filter(|_| !self.margins)
    }
}

/// The chips `faces` (per frame) need, in frame order: (frame index, frame → chip matrix).
pub fn chip_matrices(faces: &[Vec<Face>]) -> Vec<(usize, Affine)> {
    faces
        .iter()
        .enumerate()
        .flat_map(|(i, fs)| {
            fs.iter()
                .map(move |f| (i, chip_from_frame(&f.landmarks, CHIP_SIZE)))
        })
        .collect()
}

/// Runs `f` on `batch` as `Frames`: on the GPU when every frame is there and `plane` is given,
/// else in host memory.
pub fn with_frames<T>(
    plane: Option<&DevicePlane>,
    batch: &[SampledFrame],
    f: impl FnOnce(&mut dyn Frames) -> Result<T>,
) -> Result<T> {
    let on_gpu: Option<Vec<&DeviceFrame>> = batch
        .iter()
        .map(|s| match &s.image {
            FrameImage::Device(d) => Some(d),
            FrameImage::Host(_) => None,
        })
        .collect();
    if let (Some(plane), Some(frames)) = (plane, on_gpu) {
        return f(&mut plane.frames(frames));
    }
    let images = batch
        .iter()
        .map(|s| s.image.to_host())
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&BgrImage> = images.iter().map(|i| i.as_ref()).collect();
    f(&mut HostFrames::new(&refs))
}

impl FaceClassifier {
    /// One name per (model, crop convention), model-major: `imdb`, `imdb-margin`, `utk`, ….
    pub fn names(&self) -> Vec<String> {
        self.models
            .iter()
            .flat_map(|c| self.crops.iter().map(move |crop| crop.label(c.name())))
            .collect()
    }

    /// Estimates age and gender of every found face; the chips of all frames of the batch go
    /// through each model together.
    pub fn classify(&mut self, found: FoundFaces) -> Result<Vec<Vec<AnalyzedFace>>> {
        let t = std::time::Instant::now();
        let aligned: Vec<&BgrImage> = found.chips.iter().flatten().map(|c| &c.image).collect();
        let margins: Vec<&BgrImage> = found.margins.iter().collect();
        let mut per_model = Vec::with_capacity(self.models.len() * self.crops.len());
        for model in &mut self.models {
            for crop in &self.crops {
                let inputs = match crop {
                    CropConvention::Aligned => &aligned,
                    CropConvention::Margin => &margins,
                };
                per_model.push(model.classify(inputs)?);
            }
        }
        self.classify_s += t.elapsed().as_secs_f64();
        let mut k = 0;
        Ok(found
            .faces
            .into_iter()
            .zip(found.chips)
            .map(|(fs, cs)| {
                fs.into_iter()
                    .zip(cs)
                    .map(|(face, chip)| {
                        let estimates = per_model.iter().map(|m| m[k]).collect();
                        k += 1;
                        AnalyzedFace {
                            face,
                            chip,
                            estimates,
                        }
                    })
                    .collect()
            })
            .collect())
    }
}
