//! Greedy non-maximum suppression with the "+1" pixel-area convention that RetinaFace (both
//! exports) and SCRFD use in their reference code: area = (x2 - x1 + 1)·(y2 - y1 + 1).

use super::Face;

pub fn iou_plus_one(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// Keeps the highest-scoring faces, dropping any that overlap a kept one by more than `iou`.
pub fn nms(mut faces: Vec<Face>, iou: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len().min(64));
    for f in faces {
        if kept.iter().all(|k| iou_plus_one(&k.bbox, &f.bbox) <= iou) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(b: [f32; 4], score: f32) -> Face {
        Face {
            bbox: b,
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn overlapping_lower_score_is_dropped() {
        let out = nms(
            vec![
                face([0., 0., 9., 9.], 0.8),
                face([1., 1., 10., 10.], 0.9),
                face([50., 50., 60., 60.], 0.7),
            ],
            0.4,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].score, 0.7);
    }

    #[test]
    fn iou_uses_plus_one_areas() {
        // 10x10 boxes (with +1) overlapping by 5 columns: inter 50, union 150.
        let v = iou_plus_one(&[0., 0., 9., 9.], &[5., 0., 14., 9.]);
        assert!((v - 50.0 / 150.0).abs() < 1e-6);
    }
}
