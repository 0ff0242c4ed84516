//! Face alignment: a similarity transform from the five landmarks to the ArcFace template ×2, and
//! the warp that cuts the 224×224 chip.

pub mod margin;
pub mod similarity;
pub mod warp;

use crate::detect::Face;
use crate::image::BgrImage;
pub use similarity::{chip_from_frame, estimate_similarity, Affine, CHIP_SIZE};

/// An aligned face chip and the matrix that produced it.
#[derive(Clone, Debug)]
pub struct Chip {
    pub image: BgrImage,
    pub frame_to_chip: Affine,
}

/// Aligns one face of `frame` to a `CHIP_SIZE`² chip.
pub fn align_face(frame: &BgrImage, face: &Face) -> Chip {
    let m = chip_from_frame(&face.landmarks, CHIP_SIZE);
    Chip {
        image: warp::warp_affine(frame, &m, CHIP_SIZE, CHIP_SIZE),
        frame_to_chip: m,
    }
}
