//! Annotated frames (`--frames N`): boxes and landmarks drawn on the sampled frame.

use crate::analyze::AnalyzedFace;
use crate::image::BgrImage;

const BOX: [u8; 3] = [0, 255, 0];
const POINTS: [[u8; 3]; 5] = [
    [255, 0, 0],
    [0, 0, 255],
    [0, 255, 255],
    [255, 0, 255],
    [255, 255, 0],
];

pub fn draw(frame: &BgrImage, faces: &[AnalyzedFace]) -> BgrImage {
    let mut img = frame.clone();
    let thick = (img.width.max(img.height) / 400).max(1) as i64;
    for f in faces {
        let [x1, y1, x2, y2] = f.face.bbox.map(|v| v.round() as i64);
        for t in 0..thick {
            hline(&mut img, x1, x2, y1 + t, BOX);
            hline(&mut img, x1, x2, y2 - t, BOX);
            vline(&mut img, x1 + t, y1, y2, BOX);
            vline(&mut img, x2 - t, y1, y2, BOX);
        }
        for (p, color) in f.face.landmarks.iter().zip(POINTS) {
            let (cx, cy) = (p[0].round() as i64, p[1].round() as i64);
            for dy in -thick - 1..=thick + 1 {
                for dx in -thick - 1..=thick + 1 {
                    put(&mut img, cx + dx, cy + dy, color);
                }
            }
        }
    }
    img
}

fn put(img: &mut BgrImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as usize) < img.width && (y as usize) < img.height {
        let i = (y as usize * img.width + x as usize) * 3;
        img.data[i..i + 3].copy_from_slice(&c);
    }
}

fn hline(img: &mut BgrImage, x1: i64, x2: i64, y: i64, c: [u8; 3]) {
    (x1..=x2).for_each(|x| put(img, x, y, c));
}

fn vline(img: &mut BgrImage, x: i64, y1: i64, y2: i64, c: [u8; 3]) {
    (y1..=y2).for_each(|y| put(img, x, y, c));
}
