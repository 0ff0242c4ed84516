//! Command-line arguments (raw values; `cli::mod` turns them into validated configurations).

use std::path::PathBuf;

use crate::decode::Sampling;
use crate::runtime::providers::Precision;
use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Find every face in a folder of TV recordings and estimate age and gender.

For each video: decode, sample frames by timestamp (default one per second), detect faces,
align each to a 224x224 chip, estimate age and gender with the IMDB-WIKI and UTK WideResNets,
and write one uncompressed tar of JPEG chips plus TSV tables readable in R.";

const EXAMPLES: &str = "Examples:
  facetv-gpu --input recordings/ --output results/
  facetv-gpu --input recordings/ --output results/ --every 0.5 --frames 100
  facetv-gpu --input /archive --output /scratch/out --shard 3/16      # one task of a job array
  facetv-gpu report results/ && facetv-gpu evaluate results/ --labels coded.tsv
  facetv-gpu image photo.jpg
  facetv-gpu models fetch";

#[derive(Parser, Debug)]
#[command(name = "facetv-gpu", version, about = ABOUT, after_help = EXAMPLES, allow_negative_numbers = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Process videos and photos into chips and tables (the default command).
    #[command(after_help = EXAMPLES)]
    Run(RunArgs),
    /// Detect faces in still images and print one TSV row per face.
    #[command(after_help = "Example:\n  facetv-gpu image --detector scrfd_500m a.jpg b.png")]
    Image(ImageArgs),
    /// How far a run has come: inputs done, running (owner, heartbeat), failed, left; throughput.
    #[command(
        after_help = "Examples:\n  facetv-gpu status /scratch/faces --input /archive/tv\n  facetv-gpu status /scratch/faces --json"
    )]
    Status {
        /// The shared results folder.
        #[arg(value_name = "RESULTS_DIR")]
        results: std::path::PathBuf,
        /// The input folders, to count the inputs still left.
        #[arg(long, short, value_name = "DIR|FILE", num_args = 1..)]
        input: Vec<std::path::PathBuf>,
        /// Seconds after which a silent lock counts as a dead worker's.
        #[arg(long, default_value_t = 300, value_name = "S")]
        lock_timeout: u64,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One tidy table over all inputs (one row per face and classifier), as TSV and Parquet.
    #[command(
        after_help = "Example:\n  facetv-gpu merge results/   # writes results/merged_faces.tsv and .parquet\n\nStation and start time come from file names like rtl-201701190940.ts.mp4;\nother layouts: --name-pattern with the named groups station and start (YYYYMMDDHHMM[SS])."
    )]
    Merge {
        /// A results folder written by the main job.
        #[arg(value_name = "RESULTS_DIR")]
        results: std::path::PathBuf,
        /// Regular expression on each input's file name with named groups `station` and `start`.
        #[arg(long, default_value = crate::archive::merge::DEFAULT_NAME_PATTERN)]
        name_pattern: String,
    },
    /// Write report.html into a results folder: plots, tables, a contact sheet, failures.
    #[command(
        after_help = "Example:\n  facetv-gpu report results/   # then open results/report.html"
    )]
    Report {
        /// A results folder written by the main job.
        #[arg(value_name = "RESULTS_DIR")]
        results: std::path::PathBuf,
    },
    /// Age/gender quality: against hand-coded labels, between classifiers, and over time.
    #[command(
        after_help = "Examples:\n  facetv-gpu evaluate results/\n  facetv-gpu evaluate results/ --labels coded_sample.tsv --json"
    )]
    Evaluate(EvaluateArgs),
    /// Check our CUDA kernels on a GPU against their CPU twins and time them (a table, or JSON).
    #[command(
        name = "gpu-check",
        after_help = "Example:\n  facetv-gpu gpu-check --device 0\n\nExit status: 0 every kernel agrees with its CPU twin, 1 one does not, 2 the check could not run (no GPU, driver or NVRTC)."
    )]
    GpuCheck {
        /// The GPU, numbered from 0 as CUDA_VISIBLE_DEVICES shows them.
        #[arg(long, default_value_t = 0, value_name = "N", value_parser = parse_one_gpu)]
        device: usize,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure each stage alone and the whole job on one video.
    #[command(after_help = "Example:\n  facetv-gpu bench --input news.ts --json > bench.json")]
    Bench(BenchArgs),
    /// List, fetch, convert and verify the models.
    #[command(
        subcommand,
        after_help = "Examples:\n  facetv-gpu models list\n  facetv-gpu models fetch imdb\n  FACETV_MODEL_MIRROR=/data/models facetv-gpu models fetch\n  facetv-gpu models convert weights.29-3.76_utk.hdf5 utk.onnx"
    )]
    Models(ModelsCommand),
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// ONNX Runtime shared library (default: the project-local install made by scripts/setup.sh).
    #[arg(long, global = true, env = "FACETV_ORT_LIB", value_name = "FILE")]
    pub ort_lib: Option<PathBuf>,
    /// Model cache directory (default: .facetv/models in the project, else ~/.cache/facetv/models).
    #[arg(long, global = true, env = "FACETV_MODELS", value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Threads for ONNX Runtime (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Print only errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail in the log (repeat for debug output).
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Detection and classification settings shared by `run` and `image`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Face detector (see `facetv-gpu models list`).
    #[arg(long, default_value = "retinaface_mnet025")]
    pub detector: String,
    /// Age/gender models, comma-separated (default: imdb and, when installed, utk).
    #[arg(long, value_delimiter = ',')]
    pub classifiers: Option<Vec<String>>,
    /// What the age/gender models see: `aligned` (the landmark-aligned chip, the research seed's
    /// choice and the default in models/models.toml) and/or `margin` (the box widened by 40 %, what
    /// the models were trained on). `aligned,margin` runs both; results are labelled `imdb`,
    /// `imdb-margin`, ….
    #[arg(long, value_delimiter = ',', value_enum, value_name = "CROP[,CROP]")]
    pub age_crop: Option<Vec<crate::classify::crop::CropConvention>>,
    /// Minimum detection score.
    #[arg(long, default_value_t = 0.8)]
    pub threshold: f32,
    /// IoU above which overlapping detections are merged.
    #[arg(long, default_value_t = 0.4)]
    pub nms: f32,
    /// The frame's longer side is resized to this before detection.
    #[arg(long, default_value_t = 640)]
    pub max_side: usize,
    /// Drop faces whose box is smaller than this many pixels (shorter side, frame pixels).
    #[arg(long, default_value_t = 0.0, value_name = "PX")]
    pub min_face: f32,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Video or photo files, or folders searched recursively.
    #[arg(long, short, value_name = "DIR|FILE", num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Where results go; each input keeps its path relative to its input folder.
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Seconds between sampled frames (by presentation timestamp).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub every: f64,
    /// exact: the first frame at or after each sample point (decodes what those frames need);
    /// keyframe: the first key frame at or after it (decodes only key frames: much faster on
    /// long-GOP material, but samples are no closer together than the key frames).
    #[arg(long, value_enum, default_value_t = Sampling::Exact)]
    pub sampling: Sampling,
    /// Decode every frame. By default exact sampling leaves out what the sampled frames do not
    /// need (pictures nothing refers to, the rest of a GOP after its sampled frame, GOPs without
    /// a sample point), and keyframe sampling the key frames no sample point takes, where that
    /// gives the same frames; this turns it off, for checking (same results, slower).
    #[arg(long)]
    pub decode_all: bool,
    /// Also write every N-th sampled frame with boxes and landmarks drawn.
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,
    /// cpu; a GPU number, or several (0,1,…: one pipeline per GPU); auto: every GPU when the GPU
    /// build of ONNX Runtime can use them, else the CPU.
    #[arg(long, default_value = "auto", value_parser = parse_device, value_name = "cpu|auto|N[,N…]")]
    pub device: DeviceArg,
    /// Arithmetic of the GPU's TensorRT engines (default fp16; GPU runs only).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Videos processed at the same time [default: 1 on the CPU; on GPUs, per GPU one per video
    /// decoder (NVDEC engine) it has, e.g. 7 on an H100/H200, at most one per 4 GiB of its memory;
    /// never more than there are inputs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Re-process inputs that already have complete results.
    #[arg(long)]
    pub force: bool,
    /// Process only shard K of N (0 ≤ K < N): a fixed share of the inputs, for job arrays.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// Sampled frames sent through the models together.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub batch_frames: u16,
    /// Seconds between checkpoints inside a video (a killed run resumes from the last one).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub checkpoint_every: f64,
    /// Seconds after which another worker's silent lock is taken over.
    #[arg(long, default_value_t = 300, value_name = "S")]
    pub lock_timeout: u64,
    /// Seconds between progress lines when the output is not a terminal (batch jobs).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub progress_interval: f64,
    /// Seconds a file may make no progress before it is given up as stalled.
    #[arg(long, default_value_t = 300, value_name = "S")]
    pub stall_timeout: u64,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    /// Image files (JPEG, PNG, WebP, BMP, TIFF).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Show every known model, its role, source and whether it is installed.
    List,
    /// Fetch (and convert) models into the cache; default: every default model.
    Fetch {
        /// Model names (default: all default models).
        names: Vec<String>,
        /// Fetch even when a verified copy is present.
        #[arg(long)]
        force: bool,
    },
    /// Check the sha256 of installed models.
    Verify { names: Vec<String> },
    /// Convert a Keras HDF5 WideResNet file to ONNX.
    Convert {
        /// The Keras .hdf5 file (full model save).
        input: PathBuf,
        /// Where to write the ONNX file.
        output: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The video to measure.
    #[arg(long, short, value_name = "FILE")]
    pub input: std::path::PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds between sampled frames.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub every: f64,
    /// exact or keyframe (see `facetv-gpu run --help`).
    #[arg(long, value_enum, default_value_t = Sampling::Exact)]
    pub sampling: Sampling,
    /// Pass nothing over, in the decode stage and the end-to-end run (see `facetv-gpu run
    /// --help`); without it the decode stage is also timed that way, for the ratio.
    #[arg(long)]
    pub decode_all: bool,
    /// Sampled frames sent through the models together.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub batch_frames: u16,
    /// cpu, or the GPU to measure (auto: GPU 0 when usable, else the CPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device, value_name = "cpu|auto|N")]
    pub device: DeviceArg,
    /// Arithmetic of the GPU's TensorRT engines (default fp16; GPU runs only).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Instead of the stages: decoding throughput with this many videos decoded at once (every
    /// frame; NVDEC sessions with --device N, which also compares NVDEC's sampled frames with the
    /// CPU decoder's), e.g. 1,4,7,14.
    #[arg(long, value_delimiter = ',', value_name = "N[,N…]", value_parser = clap::value_parser!(u16).range(1..))]
    pub decode_sessions: Vec<u16>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Where the models run (`--device`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    Cpu,
    Auto,
    Gpus(Vec<usize>),
}

fn parse_device(s: &str) -> Result<DeviceArg, String> {
    match s.trim() {
        "cpu" => Ok(DeviceArg::Cpu),
        "auto" => Ok(DeviceArg::Auto),
        list => {
            let mut gpus = Vec::new();
            for part in list.split(',') {
                let n: usize = part.trim().parse().map_err(|_| {
                    format!("'{part}' is not a GPU number; use cpu, auto, or GPU numbers such as 0 or 0,1")
                })?;
                if gpus.contains(&n) {
                    return Err(format!("GPU {n} is listed twice; list each GPU once"));
                }
                gpus.push(n);
            }
            Ok(DeviceArg::Gpus(gpus))
        }
    }
}

fn parse_one_gpu(s: &str) -> Result<usize, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not a GPU number: gpu-check checks one GPU (0, 1, …); a machine without one has nothing to check")
    })
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s.split_once('/').ok_or("expected K/N, e.g. 3/16")?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| "K is not a number")?,
        n.trim().parse().map_err(|_| "N is not a number")?,
    );
    if n == 0 || k >= n {
        return Err(format!("need 0 <= K < N, got {k}/{n}"));
    }
    Ok((k, n))
}

#[derive(Args, Debug, Clone)]
pub struct EvaluateArgs {
    /// A results folder written by the main job.
    #[arg(value_name = "RESULTS_DIR")]
    pub results: std::path::PathBuf,
    /// Hand-coded labels (TSV; see `docs/FIDELITY.md` for the columns). Without them only the
    /// label-free diagnostics are reported.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<std::path::PathBuf>,
    /// Print the evaluation as JSON.
    #[arg(long)]
    pub json: bool,
}
