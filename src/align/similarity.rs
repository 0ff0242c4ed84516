//! Least-squares similarity transform (rotation, uniform scale, translation; no reflection) from
//! five landmarks to the ArcFace template — what insightface's `norm_crop` computes with
//! scikit-image's `SimilarityTransform.estimate` (Umeyama's method).
//!
//! In 2-D the optimum has a closed form: with centred source points p and destination points q,
//! `a = Σ(p·q) / Σ|p|²`, `b = Σ(p × q) / Σ|p|²`; the matrix is `[[a, -b, tx], [b, a, ty]]` with the
//! translation mapping the source centroid onto the destination centroid. This equals Umeyama's
//! solution with its reflection correction, since both minimise the same error over proper
//! similarities.

/// ArcFace's 112×112 five-point template (left eye, right eye, nose, left/right mouth corner).
pub const ARCFACE_112: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Side of the face chip the research seed writes (the template scaled ×2).
pub const CHIP_SIZE: usize = 224;

/// The template for a square chip of `size` pixels (ArcFace ×size/112).
pub fn template(size: usize) -> [[f64; 2]; 5] {
    let s = size as f64 / 112.0;
    ARCFACE_112.map(|[x, y]| [x * s, y * s])
}

/// A 2×3 affine matrix, row-major: `[m0 m1 m2; m3 m4 m5]`, mapping frame → chip coordinates.
pub type Affine = [f64; 6];

/// Estimates the similarity mapping `src` onto `dst` in the least-squares sense.
pub fn estimate_similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Affine {
    let n = src.len().min(dst.len()) as f64;
    let mean = |pts: &[[f64; 2]]| {
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), p| (a + p[0], b + p[1]));
        [sx / n, sy / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (p, q) in src.iter().zip(dst) {
        let (px, py) = (p[0] - ms[0], p[1] - ms[1]);
        let (qx, qy) = (q[0] - md[0], q[1] - md[1]);
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        norm += px * px + py * py;
    }
    if norm == 0.0 {
        // All landmarks coincide: no scale or rotation can be estimated; map the point to the
        // template centroid at unit scale rather than dividing by zero.
        return [1.0, 0.0, md[0] - ms[0], 0.0, 1.0, md[1] - ms[1]];
    }
    let a = dot / norm;
    let b = cross / norm;
    [
        a,
        -b,
        md[0] - (a * ms[0] - b * ms[1]),
        b,
        a,
        md[1] - (b * ms[0] + a * ms[1]),
    ]
}

/// The matrix that aligns a face with `landmarks` (frame pixels) to a `size`×`size` chip.
pub fn chip_from_frame(landmarks: &[[f32; 2]; 5], size: usize) -> Affine {
    let src: Vec<[f64; 2]> = landmarks
        .iter()
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    estimate_similarity(&src, &template(size))
}

/// Inverse of a similarity/affine 2×3 matrix.
pub fn invert(m: &Affine) -> Affine {
    let det = m[0] * m[4] - m[1] * m[3];
    let d = if det != 0.0 { 1.0 / det } else { 0.0 };
    let (a11, a12, a21, a22) = (m[4] * d, -m[1] * d, -m[3] * d, m[0] * d);
    [
        a11,
        a12,
        -a11 * m[2] - a12 * m[5],
        a21,
        a22,
        -a21 * m[2] - a22 * m[5],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let m_true: Affine = [1.2 * 0.8, -1.2 * 0.6, 10.0, 1.2 * 0.6, 1.2 * 0.8, -5.0];
        let src = ARCFACE_112.to_vec();
        let dst: Vec<[f64; 2]> = src
            .iter()
            .map(|p| {
                [
                    m_true[0] * p[0] + m_true[1] * p[1] + m_true[2],
                    m_true[3] * p[0] + m_true[4] * p[1] + m_true[5],
                ]
            })
            .collect();
        let m = estimate_similarity(&src, &dst);
        for (a, b) in m.iter().zip(m_true.iter()) {
            assert!((a - b).abs() < 1e-9, "{m:?} vs {m_true:?}");
        }
    }

    #[test]
    fn never_reflects() {
        // Mirrored template: the best proper similarity has a positive determinant.
        let src: Vec<[f64; 2]> = ARCFACE_112.iter().map(|p| [-p[0], p[1]]).collect();
        let m = estimate_similarity(&src, &ARCFACE_112);
        assert!(m[0] * m[4] - m[1] * m[3] > 0.0);
    }

    #[test]
    fn inverse_round_trips() {
        let m: Affine = [1.3, -0.7, 184.3, 0.7, 1.3, -375.9];
        let inv = invert(&m);
        let (x, y) = (100.0, 200.0);
        let (u, v) = (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]);
        let (x2, y2) = (
            inv[0] * u + inv[1] * v + inv[2],
            inv[3] * u + inv[4] * v + inv[5],
        );
        assert!((x - x2).abs() < 1e-9 && (y - y2).abs() < 1e-9);
    }
}
