//! Which picture of a face the age/gender models see — a scientific choice, recorded with every
//! estimate (`imdb` vs `imdb-margin` in the tables):
//!
//! - `aligned` (the research seed's, the default for comparability): the 224×224 landmark-aligned
//!   chip, resized to 64×64;
//! - `margin` (what the WideResNets were trained on): the detector's box widened by 40 % on every
//!   side, clipped to the frame, resized to 64×64 without keeping the aspect ratio
//!   (`crate::align::margin`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CropConvention {
    Aligned,
    Margin,
}

impl CropConvention {
    /// The classifier name written to the tables: `imdb`, `imdb-margin`.
    pub fn label(self, model: &str) -> String {
        match self {
            CropConvention::Aligned => model.to_string(),
            CropConvention::Margin => format!("{model}-margin"),
        }
    }
}
