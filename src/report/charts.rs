//! The report's plots, drawn with plotters into inline SVG strings.

use plotters::prelude::*;

const W: u32 = 560;
const H: u32 = 260;
const FEMALE: RGBColor = RGBColor(200, 60, 120);
const MALE: RGBColor = RGBColor(40, 110, 190);
const BAR: RGBColor = RGBColor(90, 90, 160);

fn finish(svg: String) -> String {
    // plotters writes a standalone document; the XML declaration is not valid inside HTML.
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    }
}

fn upper(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        1.0
    } else {
        max * 1.1
    }
}

/// Faces per sampled frame over media time.
pub fn faces_over_time(samples: &[(f64, usize)], title: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let tmax = samples.iter().map(|s| s.0).fold(0.0, f64::max).max(1.0);
        let ymax = samples.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 0f64..ymax + 0.5)
        {
            let _ = chart
                .configure_mesh()
                .x_desc("media time (s)")
                .y_desc("faces")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw();
            let _ = chart.draw_series(LineSeries::new(
                samples.iter().map(|(t, n)| (*t, *n as f64)),
                &BAR,
            ));
            let _ = chart.draw_series(
                samples
                    .iter()
                    .map(|(t, n)| Circle::new((*t, *n as f64), 2, BAR.filled())),
            );
        }
        let _ = root.present();
    }
    finish(svg)
}

/// Counts of `values` in `bins` equal bins over [lo, hi).
fn bin(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64, usize)> {
    let step = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in values {
        if v.is_finite() {
            let k = (((v - lo) / step).floor().max(0.0) as usize).min(bins - 1);
            counts[k] += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(k, c)| (lo + k as f64 * step, lo + (k + 1) as f64 * step, *c))
        .collect()
}

/// A histogram of one or more series (drawn side by side within each bin).
pub fn histogram(
    series: &[(&str, RGBColor, Vec<f64>)],
    lo: f64,
    hi: f64,
    bins: usize,
    title: &str,
    x_desc: &str,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let binned: Vec<_> = series
            .iter()
            .map(|(n, c, v)| (*n, *c, bin(v, lo, hi, bins)))
            .collect();
        let ymax = binned
            .iter()
            .flat_map(|(_, _, b)| b.iter().map(|x| x.2))
            .max()
            .unwrap_or(0) as f64;
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0f64..upper(ymax))
        {
            let _ = chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc("faces")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .x_label_formatter(&|v| {
                    if (hi - lo) >= 10.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.2}")
                    }
                })
                .draw();
            let k = binned.len().max(1) as f64;
            for (i, (name, color, b)) in binned.iter().enumerate() {
                let color = *color;
                let drawn = chart.draw_series(b.iter().map(|(x0, x1, c)| {
                    let w = (x1 - x0) / k;
                    let left = x0 + w * i as f64;
                    Rectangle::new([(left, 0.0), (left + w * 0.9, *c as f64)], color.filled())
                }));
                if let Ok(d) = drawn {
                    d.label(*name).legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
                }
            }
            if series.len() > 1 {
                let _ = chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw();
            }
        }
        let _ = root.present();
    }
    finish(svg)
}

pub fn age_by_gender(female: Vec<f64>, male: Vec<f64>, classifier: &str) -> String {
    histogram(
        &[
            ("estimated female", FEMALE, female),
            ("estimated male", MALE, male),
        ],
        0.0,
        100.0,
        20,
        &format!("Estimated age by estimated gender ({classifier})"),
        "age (years)",
    )
}

/// Ages from two classifiers on the same faces, with the identity line.
pub fn agreement_scatter(points: &[(f64, f64)], a: &str, b: &str, mean_diff: f64) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H + 60)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = points
            .iter()
            .flat_map(|p| [p.0, p.1])
            .fold(10.0, f64::max)
            .min(100.0)
            * 1.05;
        if let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(
                format!("Age: {a} vs {b} (mean {a} − {b} = {mean_diff:+.2} years)"),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..top, 0f64..top)
        {
            let _ = chart
                .configure_mesh()
                .x_desc(format!("age, {a}"))
                .y_desc(format!("age, {b}"))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw();
            let _ = chart.draw_series(LineSeries::new([(0.0, 0.0), (top, top)], &BLACK.mix(0.4)));
            let _ = chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 2, BAR.mix(0.6).filled())),
            );
        }
        let _ = root.present();
    }
    finish(svg)
}

pub const SIZE_COLOR: RGBColor = BAR;
