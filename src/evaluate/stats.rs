//! Small statistics helpers.

/// Wilson score interval for a proportion (95 % with z = 1.96).
pub fn wilson(successes: usize, n: usize) -> (f64, f64, f64) {
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let z = 1.959964;
    let p = successes as f64 / n as f64;
    let n = n as f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (p, (centre - half).max(0.0), (centre + half).min(1.0))
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_textbook_value() {
        // 30 of 100: 0.3, 95 % Wilson interval [0.2189, 0.3958]
        let (p, lo, hi) = wilson(30, 100);
        assert!(
            (p - 0.3).abs() < 1e-12 && (lo - 0.2189).abs() < 1e-3 && (hi - 0.3958).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn iou_of_half_overlapping_boxes() {
        assert!((iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]) - 50.0 / 150.0).abs() < 1e-12);
    }
}
