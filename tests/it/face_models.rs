//! Issue 2: detectors, alignment and the WideResNet age/gender models against reference values.

use facetv::align::{align_face, chip_from_frame, warp::warp_affine, CHIP_SIZE};
use facetv::classify::{AgeGenderModel, OnnxAgeGender};
use facetv::detect::{DetectOptions, Detector, OnnxDetector};
use facetv::image::BgrImage;
use facetv::models::onnx_writer::{
    encode_model, Attr, Dim, ElemType, Graph, Node, Tensor, ValueInfo,
};
use facetv::models::{ChannelOrder, Family, InputSpec, ModelSpec, Role};

use crate::common::*;

fn imdb() -> OnnxAgeGender {
    let store = store();
    let spec = manifest().get("imdb").unwrap();
    OnnxAgeGender::open(spec, &store.verified_path(spec).unwrap(), session()).unwrap()
}

/// The synthetic inputs of reference/README.md, as BGR images.
fn synthetic(name: &str) -> BgrImage {
    let mut img = BgrImage::new(64, 64);
    for y in 0..64 {
        for x in 0..64 {
            let px = match name {
                "uniform128" => [128, 128, 128],
                "gradient" => [
                    ((4 * x) % 256) as u8,
                    ((4 * y) % 256) as u8,
                    ((2 * (x + y)) % 256) as u8,
                ],
                "checker8" => {
                    let v = if (x / 8 + y / 8) % 2 == 1 { 255 } else { 0 };
                    [v, v, v]
                }
                _ => unreachable!(),
            };
            let i = (y * 64 + x) * 3;
            img.data[i..i + 3].copy_from_slice(&px);
        }
    }
    img
}

#[test]
fn imdb_wideresnet_reproduces_the_keras_reference() {
    let (header, rows) = read_tsv(&shared().join("reference/wrn_imdb_reference.tsv"));
    assert!(rows.len() >= 9);
    let mut model = imdb();
    for row in &rows {
        let input = &row[0];
        let img = if input.starts_with("chips/") {
            BgrImage::load(&shared().join("reference").join(input)).unwrap()
        } else {
            synthetic(input)
        };
        let got = model.classify(&[&img]).unwrap()[0];
        let (female, age) = (col(&header, row, "female"), col(&header, row, "age"));
        assert!(
            (got.female as f64 - female).abs() < 0.002,
            "{input}: female {} vs {female}",
            got.female
        );
        assert!(
            (got.age as f64 - age).abs() < 0.05,
            "{input}: age {} vs {age}",
            got.age
        );
    }
}

#[test]
fn swapping_channels_changes_the_estimates() {
    let mut model = imdb();
    let chip = BgrImage::load(&shared().join("reference/chips/t1_face2_64.png")).unwrap();
    let mut swapped = chip.clone();
    swapped.swap_red_blue();
    let r = model.classify(&[&chip, &swapped]).unwrap();
    assert!(
        (r[0].female - r[1].female).abs() > 0.01 || (r[0].age - r[1].age).abs() > 0.5,
        "BGR and RGB inputs gave the same result: {r:?}"
    );
    let mut det = detector("retinaface_mnet025", 0.5);
    let t1 = load("images/insightface_t1.jpg");
    let mut t1_rgb = t1.clone();
    t1_rgb.swap_red_blue();
    let a = det.detect_images(&[&t1, &t1_rgb]).unwrap();
    let diff: f32 = a[0]
        .iter()
        .zip(&a[1])
        .map(|(x, y)| (x.score - y.score).abs())
        .sum();
    assert!(
        diff > 1e-4,
        "detector scores did not move with the channel order"
    );
}

#[test]
fn batch_one_batch_n_and_partial_batches_agree() {
    let mut model = imdb();
    let chips: Vec<BgrImage> = (0..6)
        .map(|i| {
            BgrImage::load(&shared().join(format!("reference/chips/t1_face{i}_64.png"))).unwrap()
        })
        .collect();
    let refs: Vec<&BgrImage> = chips.iter().collect();
    let all = model.classify(&refs).unwrap();
    let single: Vec<_> = refs
        .iter()
        .map(|c| model.classify(&[*c]).unwrap()[0])
        .collect();
    let partial: Vec<_> = refs
        .chunks(4)
        .flat_map(|part| model.classify(part).unwrap())
        .collect();
    for i in 0..6 {
        for other in [&single[i], &partial[i]] {
            assert!(
                (all[i].female - other.female).abs() < 1e-5
                    && (all[i].age - other.age).abs() < 1e-4,
                "chip {i}: {:?} vs {other:?}",
                all[i]
            );
        }
    }
    let mut det = detector("scrfd_500m", 0.5);
    let imgs = [
        load("images/insightface_t1.jpg"),
        load("images/fr_two_people.jpg"),
        load("images/noface_dlib_horses.jpg"),
    ];
    let together = det.detect_images(&imgs.iter().collect::<Vec<_>>()).unwrap();
    for (img, faces) in imgs.iter().zip(&together) {
        assert_eq!(&det.detect_images(&[img]).unwrap()[0], faces);
    }
}

/// Face counts at threshold 0.5 from media/PROVENANCE.md (det_500m / biubug6 columns; det_2.5g
/// from models/PROVENANCE.md). The tolerance of max(1, 3 %) covers faces whose score sits at the
/// 0.5 threshold, which move with the resampling method of the 640 input (OpenCV-style here,
/// Pillow in the provenance run).
#[test]
fn face_counts_on_the_shared_photos() {
    let table: &[(&str, [usize; 3])] = &[
        ("insightface_t1.jpg", [6, 6, 6]),
        ("biubug6_curve_test.jpg", [26, 23, 26]),
        ("worlds_largest_selfie.jpg", [90, 116, 152]),
        ("fr_two_people.jpg", [2, 2, 2]),
        ("dlib_bald_guys.jpg", [24, 24, 24]),
        ("dlib_voc_2008_002470.jpg", [6, 6, 6]),
        ("uniface_src_friends.jpg", [3, 3, 2]),
        ("uniface_src_meeting.jpg", [5, 5, 5]),
        ("noface_dlib_horses.jpg", [0, 0, 0]),
    ];
    for (k, name) in ["retinaface_mnet025", "scrfd_500m", "scrfd_2.5g"]
        .iter()
        .enumerate()
    {
        let mut det = detector(name, 0.5);
        for (file, counts) in table {
            let n = det
                .detect_images(&[&load(&format!("images/{file}"))])
                .unwrap()[0]
                .len();
            let expected = counts[k];
            let tol = (expected as f64 * 0.03).ceil().max(1.0) as usize;
            let tol = if expected == 0 { 0 } else { tol };
            assert!(
                n.abs_diff(expected) <= tol,
                "{name} on {file}: {n} faces, expected {expected}±{tol}"
            );
        }
    }
}

#[test]
fn boxes_landmarks_and_alignment_match_the_t1_reference() {
    let (header, rows) = read_tsv(&shared().join("reference/detect_align_t1_biubug6.tsv"));
    let mut det = detector("retinaface_mnet025", 0.8);
    let faces = det
        .detect_images(&[&load("images/insightface_t1.jpg")])
        .unwrap()
        .remove(0);
    assert_eq!(faces.len(), rows.len());
    for (f, row) in faces.iter().zip(&rows) {
        for (i, c) in ["bx1", "by1", "bx2", "by2"].iter().enumerate() {
            assert!(
                (f.bbox[i] as f64 - col(&header, row, c)).abs() < 0.5,
                "{c}: {} vs {}",
                f.bbox[i],
                col(&header, row, c)
            );
        }
        for p in 0..5 {
            for (xy, c) in ["lx", "ly"].iter().enumerate() {
                let want = col(&header, row, &format!("{c}{p}"));
                assert!(
                    (f.landmarks[p][xy] as f64 - want).abs() < 0.5,
                    "{c}{p}: {} vs {want}",
                    f.landmarks[p][xy]
                );
            }
        }
        assert!((f.score as f64 - col(&header, row, "score")).abs() < 1e-3);
        // The similarity matrix for the reference landmarks is exact to 1e-4.
        let mut lm = [[0f32; 2]; 5];
        for (p, pt) in lm.iter_mut().enumerate() {
            *pt = [
                col(&header, row, &format!("lx{p}")) as f32,
                col(&header, row, &format!("ly{p}")) as f32,
            ];
        }
        let m = chip_from_frame(&lm, CHIP_SIZE);
        for (k, v) in m.iter().enumerate() {
            let want = col(&header, row, &format!("m{k}"));
            // The reference matrix was computed from unrounded landmarks; rounding them to the printed
            // 1e-3 px moves the translation by up to 0.015 px (a textbook Umeyama on the printed
            // values shows the same), while rotation and scale stay exact to 1e-4.
            let tol = if k == 2 || k == 5 { 0.02 } else { 1e-4 };
            assert!((v - want).abs() < tol, "m{k}: {v} vs {want}");
        }
    }
}

/// Boxes in `insightface_t1.jpg` measured independently (media/PROVENANCE.md, a separate Python
/// decoder): every detected face lies within 2 px of one of them.
#[test]
fn t1_boxes_agree_with_the_independent_provenance_run() {
    let known = [
        [746., 353., 846., 475.],
        [460., 263., 575., 411.],
        [904., 61., 1012., 205.],
        [54., 260., 171., 396.],
        [1133., 276., 1225., 399.],
        [273., 144., 371., 273.],
    ];
    let faces = detector("retinaface_mnet025", 0.8)
        .detect_images(&[&load("images/insightface_t1.jpg")])
        .unwrap()
        .remove(0);
    assert_eq!(faces.len(), 6);
    for f in &faces {
        assert!(
            known
                .iter()
                .any(|k: &[f32; 4]| k.iter().zip(f.bbox).all(|(a, b)| (a - b).abs() < 2.0)),
            "{:?} matches no known face",
            f.bbox
        );
    }
}

#[test]
fn mirrored_frame_gives_the_mirrored_chip() {
    let frame = load("images/insightface_t1.jpg");
    let flipped = frame.flip_horizontal();
    let mut det = detector("retinaface_mnet025", 0.8);
    let faces = det.detect_images(&[&frame, &flipped]).unwrap();
    let w = frame.width as f32;
    for f in &faces[0] {
        // the same face in the flipped frame: box mirrored about the frame's centre
        let g = faces[1]
            .iter()
            .find(|g| {
                (g.bbox[0] - (w - f.bbox[2])).abs() < 0.1 * (f.bbox[2] - f.bbox[0])
                    && (g.bbox[1] - f.bbox[1]).abs() < 0.1 * (f.bbox[3] - f.bbox[1])
            })
            .expect("face found again in the mirrored frame");
        // Landmarks mirror too: image-left stays first, so eyes and mouth corners swap. The network
        // is not exactly mirror-equivariant, so allow 10 % of the face width (a left/right mix-up moves
        // the eyes by about 40 %).
        let tol = 0.10 * (f.bbox[2] - f.bbox[0]);
        for (i, j) in [(0, 1), (1, 0), (2, 2), (3, 4), (4, 3)] {
            assert!(
                (g.landmarks[i][0] - (w - f.landmarks[j][0])).abs() < tol,
                "landmark {i} x: {:?} vs {:?}",
                g.landmarks,
                f.landmarks
            );
            assert!(
                (g.landmarks[i][1] - f.landmarks[j][1]).abs() < tol,
                "landmark {i} y"
            );
        }
        let a = align_face(&frame, f).image.flip_horizontal();
        let b = align_face(&flipped, g).image;
        let mean_diff = |x: &BgrImage, y: &BgrImage| {
            x.data
                .iter()
                .zip(&y.data)
                .map(|(p, q)| (*p as f64 - *q as f64).abs())
                .sum::<f64>()
                / x.data.len() as f64
        };
        // The ArcFace template is not exactly symmetric (mirrored, its points move by 0.6–1.6 px
        // at chip scale), so the chips differ by a small shift; an unmirrored chip differs far more.
        let same = mean_diff(&a, &b);
        let unflipped = mean_diff(&align_face(&frame, f).image, &b);
        assert!(
            same < 0.6 * unflipped,
            "mirror diff {same}, unflipped diff {unflipped}"
        );
    }
    // The warp itself commutes exactly with mirroring when the matrix is mirrored too.
    let m = chip_from_frame(&faces[0][0].landmarks, CHIP_SIZE);
    let (fw, cw) = (frame.width as f64 - 1.0, CHIP_SIZE as f64 - 1.0);
    // chip' = F_c ∘ M ∘ F_f with F(x) = W - 1 - x
    let mirrored = [
        m[0],
        -m[1],
        cw - m[2] - m[0] * fw,
        -m[3],
        m[4],
        m[5] + m[3] * fw,
    ];
    let a = warp_affine(&frame, &m, CHIP_SIZE, CHIP_SIZE).flip_horizontal();
    let b = warp_affine(&flipped, &mirrored, CHIP_SIZE, CHIP_SIZE);
    let max = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(p, q)| p.abs_diff(*q))
        .max()
        .unwrap();
    let mean = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(p, q)| p.abs_diff(*q) as f64)
        .sum::<f64>()
        / a.data.len() as f64;
    assert!(
        max <= 8 && mean < 0.5,
        "mirrored warp differs: max {max}, mean {mean}"
    );
}

// ---------------------------------------------------------------------------------------------
// The insightface RetinaFace decoder on a graph with known outputs.

fn retina_spec(file: &str) -> ModelSpec {
    let mut spec = manifest().get("retinaface_r50").unwrap().clone();
    spec.file = file.into();
    spec.sha256 = None;
    spec
}

/// A graph whose nine outputs are constants: one face at stride 8 (cell x=3, y=2, anchor 0 of
/// size 32, score 0.9), one at stride 32 (cell 1,1, anchor 1 of size 256, score 0.7) and one below
/// the threshold.
fn known_output_graph() -> Vec<u8> {
    let mut g = Graph {
        name: "known".into(),
        ..Default::default()
    };
    g.inputs.push(ValueInfo {
        name: "data".into(),
        elem_type: ElemType::F32,
        dims: [1, 3, 64, 64].map(Dim::Fixed).to_vec(),
    });
    let names = manifest().get("retinaface_r50").unwrap().outputs.clone();
    for (k, stride) in [32usize, 16, 8].iter().enumerate() {
        let (h, w) = (64 / stride, 64 / stride);
        let plane = h * w;
        let mut cls = vec![0f32; 4 * plane];
        let mut bbox = vec![0f32; 8 * plane];
        let mut lmk = vec![0f32; 20 * plane];
        let mut set_face =
            |a: usize, x: usize, y: usize, score: f32, deltas: [f32; 4], lm: [f32; 10]| {
                let at = y * w + x;
                cls[(2 + a) * plane + at] = score;
                cls[a * plane + at] = 1.0 - score;
                for c in 0..4 {
                    bbox[(a * 4 + c) * plane + at] = deltas[c];
                }
                for c in 0..10 {
                    lmk[(a * 10 + c) * plane + at] = lm[c];
                }
            };
        match stride {
            8 => {
                set_face(
                    0,
                    3,
                    2,
                    0.9,
                    [0.1, -0.05, 1.25f32.ln(), 0.0],
                    [-0.2, -0.1, 0.2, -0.1, 0.0, 0.05, -0.15, 0.2, 0.15, 0.2],
                );
                set_face(1, 7, 7, 0.3, [0.0; 4], [0.0; 10]);
            }
            32 => set_face(1, 1, 1, 0.7, [0.0, 0.0, 0.0, 0.0], [0.0; 10]),
            _ => {}
        }
        for (j, (data, c)) in [(cls, 4), (bbox, 8), (lmk, 20)].into_iter().enumerate() {
            let name = &names[3 * k + j];
            let t = Tensor::f32(&format!("{name}_value"), &[1, c, h as i64, w as i64], data);
            g.nodes
                .push(Node::new("Constant", name, &[], &[name]).attr("value", Attr::Tensor(t)));
            g.outputs.push(ValueInfo {
                name: name.clone(),
                elem_type: ElemType::F32,
                dims: [1, c, h as i64, w as i64].map(Dim::Fixed).to_vec(),
            });
        }
    }
    encode_model(&g, 13, "facetv test")
}

#[test]
fn insightface_retinaface_decoder_on_known_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known.onnx");
    std::fs::write(&path, known_output_graph()).unwrap();
    store();
    let opts = DetectOptions {
        threshold: 0.5,
        nms_iou: 0.4,
        max_side: 64,
        min_face: 0.0,
    };
    let mut det = OnnxDetector::open(&retina_spec("known.onnx"), &path, opts, session()).unwrap();
    let faces = det
        .detect_images(&[&BgrImage::new(64, 64)])
        .unwrap()
        .remove(0);
    assert_eq!(faces.len(), 2, "{faces:?}");
    // Stride-8 face, worked by hand: anchor [16, 8, 47, 39], width 32, centre (31.5, 23.5);
    // centre (31.5 + 0.1·32, 23.5 - 0.05·32) = (34.7, 21.9), size (1.25·32, 32) = (40, 32);
    // corners centre ∓ (size - 1)/2 = (15.2, 6.4, 54.2, 37.4); landmark = centre + d·32.
    let small = faces.iter().find(|f| (f.score - 0.9).abs() < 1e-6).unwrap();
    let want = [15.2, 6.4, 54.2, 37.4];
    for i in 0..4 {
        assert!((small.bbox[i] - want[i]).abs() < 1e-4, "{:?}", small.bbox);
    }
    let want_lm = [
        [25.1, 20.3],
        [37.9, 20.3],
        [31.5, 25.1],
        [26.7, 29.9],
        [36.3, 29.9],
    ];
    for p in 0..5 {
        assert!(
            (small.landmarks[p][0] - want_lm[p][0]).abs() < 1e-4
                && (small.landmarks[p][1] - want_lm[p][1]).abs() < 1e-4,
            "{:?}",
            small.landmarks
        );
    }
    // Stride-32 face: anchor of size 256 at cell (1,1): [7.5-127.5+32, …] = [-88, -88, 167, 167],
    // decoded with zero deltas to itself; the tables clamp it to the 64×64 frame.
    let big = faces.iter().find(|f| (f.score - 0.7).abs() < 1e-6).unwrap();
    assert_eq!(big.bbox, [-88.0, -88.0, 167.0, 167.0]);
    assert_eq!(big.clamped_bbox(64, 64), [0.0, 0.0, 64.0, 64.0]);
    assert!(
        (big.landmarks[0][0] - 39.5).abs() < 1e-4,
        "landmarks are not clamped: {:?}",
        big.landmarks
    );
}

// ---------------------------------------------------------------------------------------------
// Bad model files give clear errors naming the file.

fn tiny_spec(file: &str, sha: Option<&str>) -> ModelSpec {
    ModelSpec {
        name: "tiny".into(),
        role: Role::Detector,
        family: Family::RetinafaceBiubug6,
        default: false,
        optional: false,
        file: file.into(),
        sha256: sha.map(String::from),
        description: String::new(),
        license: String::new(),
        source: Default::default(),
        input: InputSpec {
            name: "input0".into(),
            size: Some([640, 640]),
            multiple: 32,
            channel_order: ChannelOrder::Bgr,
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        outputs: vec!["output0".into(), "output1".into(), "output2".into()],
        crop: None,
    }
}

#[test]
fn bad_model_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = facetv::models::ModelStore {
        dir: dir.path().to_path_buf(),
        mirror: None,
    };
    facetv::runtime::environment(None).unwrap();
    let real = manifest().get("retinaface_mnet025").unwrap();
    let real_path = crate::common::store().verified_path(real).unwrap();
    let real_sha = real.sha256.clone().unwrap();

    // missing
    let e = store
        .verified_path(&tiny_spec("absent.onnx", None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("absent.onnx") && e.contains("models fetch"),
        "{e}"
    );

    // wrong sha256
    std::fs::write(dir.path().join("wrong.onnx"), b"not the model").unwrap();
    let e = store
        .verified_path(&tiny_spec("wrong.onnx", Some(&real_sha)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wrong.onnx") && e.contains("sha256 mismatch"),
        "{e}"
    );

    // truncated (no pinned hash, so ONNX Runtime is the one to notice)
    let bytes = std::fs::read(&real_path).unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = OnnxDetector::open(
        &tiny_spec("truncated.onnx", None),
        &truncated,
        DetectOptions::default(),
        session(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("truncated.onnx"), "{e}");

    // wrong input shape: a fixed 320×320 graph where the manifest says 640×640
    let mut g = Graph {
        name: "small".into(),
        ..Default::default()
    };
    g.inputs.push(ValueInfo {
        name: "input0".into(),
        elem_type: ElemType::F32,
        dims: [1, 3, 320, 320].map(Dim::Fixed).to_vec(),
    });
    for o in ["output0", "output1", "output2"] {
        g.nodes.push(Node::new("Identity", o, &["input0"], &[o]));
        g.outputs.push(ValueInfo {
            name: o.into(),
            elem_type: ElemType::F32,
            dims: [1, 3, 320, 320].map(Dim::Fixed).to_vec(),
        });
    }
    let small = dir.path().join("small.onnx");
    std::fs::write(&small, encode_model(&g, 13, "test")).unwrap();
    let e = OnnxDetector::open(
        &tiny_spec("small.onnx", None),
        &small,
        DetectOptions::default(),
        session(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("small.onnx") && e.contains("320"), "{e}");

    // a detector file under the wrong model entry (input names differ)
    let scrfd_path = crate::common::store()
        .verified_path(manifest().get("scrfd_500m").unwrap())
        .unwrap();
    let e = OnnxDetector::open(
        &tiny_spec("scrfd", None),
        &scrfd_path,
        DetectOptions::default(),
        session(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("scrfd_det_500m.onnx") && e.contains("input0"),
        "{e}"
    );
}
