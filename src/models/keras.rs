//! Converter from a Keras 2 HDF5 model file (a full-model save: `model_config` plus
//! `model_weights`) to ONNX, reproducing Keras/TensorFlow semantics exactly:
//!
//! - weights are stored channels-last (Conv2D kernels HWIO); the ONNX graph is NCHW, so kernels are
//!   transposed to OIHW and the Dense kernel that follows a `Flatten` has its rows permuted from
//!   Keras' (h, w, c) flattening order to ONNX's (c, h, w);
//! - `padding="same"` is TensorFlow's rule: output = ceil(in / stride), total padding
//!   max((out-1)·stride + k - in, 0), with the odd pixel padded *after* (bottom/right);
//! - `AveragePooling2D(padding="same")` averages only over real pixels (`count_include_pad=0`);
//! - `BatchNormalization` keeps its epsilon from the config (Keras' default 0.001).
//!
//! Only the layer types the supported models use are accepted; anything else is an error that names
//! the layer, so an unexpected file can never be converted silently wrong.

use std::path::Path;

use serde_json::Value;

use super::onnx_writer::{encode_model, Attr, Dim, ElemType, Graph, Node, Tensor, ValueInfo};
use crate::error::{Error, Result};

const OPSET: i64 = 13;

/// Converts `h5_path` to ONNX bytes. `output_names` renames the model's outputs, in the order of
/// the Keras model's `output_layers`.
pub fn convert_keras_hdf5(h5_path: &Path, output_names: &[&str]) -> Result<Vec<u8>> {
    let err = |m: String| Error::model("keras-convert", h5_path, m);
    let file = hdf5::File::open(h5_path).map_err(|e| err(format!("cannot open as HDF5: {e}")))?;
    let config_json: String = read_string_attr(&file, "model_config").map_err(|e| {
        err(format!(
            "no readable 'model_config' attribute (is this a full Keras model save?): {e}"
        ))
    })?;
    let config: Value = serde_json::from_str(&config_json)
        .map_err(|e| err(format!("model_config is not JSON: {e}")))?;
    let weights = file
        .group("model_weights")
        .map_err(|e| err(format!("no 'model_weights' group: {e}")))?;
    let mut conv = Converter {
        graph: Graph {
            name: "keras".into(),
            ..Default::default()
        },
        shapes: Default::default(),
        weights,
    };
    conv.convert(&config, output_names).map_err(err)?;
    Ok(encode_model(
        &conv.graph,
        OPSET,
        "facetv keras-hdf5 converter",
    ))
}

fn read_string_attr(loc: &hdf5::Location, name: &str) -> hdf5::Result<String> {
    let attr = loc.attr(name)?;
    if let Ok(s) = attr.read_scalar::<hdf5::types::VarLenUnicode>() {
        return Ok(s.as_str().to_string());
    }
    if let Ok(s) = attr.read_scalar::<hdf5::types::VarLenAscii>() {
        return Ok(s.as_str().to_string());
    }
    let v = attr.read_raw::<hdf5::types::FixedAscii<65536>>()?;
    Ok(v.first()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default())
}

fn read_string_list_attr(loc: &hdf5::Location, name: &str) -> hdf5::Result<Vec<String>> {
    let attr = loc.attr(name)?;
    if let Ok(v) = attr.read_raw::<hdf5::types::FixedAscii<1024>>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    let v = attr.read_raw::<hdf5::types::VarLenUnicode>()?;
    Ok(v.iter().map(|s| s.as_str().to_string()).collect())
}

/// Shape of a tensor in the ONNX graph (batch dimension left out).
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// NCHW feature map.
    Map { c: usize, h: usize, w: usize },
    /// Flattened vector; `from` is the map it was flattened from (ONNX order c, h, w).
    Vector {
        len: usize,
        from: Option<(usize, usize, usize)>,
    },
}

/// One stored weight: its short name (`kernel`, `gamma`, …), shape and values.
type Weight = (String, Vec<usize>, Vec<f32>);

struct Converter {
    graph: Graph,
    shapes: std::collections::HashMap<String, Shape>,
    weights: hdf5::Group,
}

fn cfg<'a>(layer: &'a Value, key: &str) -> &'a Value {
    &layer["config"][key]
}

fn pair(v: &Value, what: &str) -> Result<(usize, usize), String> {
    match v
        .as_array()
        .map(|a| a.iter().map(|x| x.as_u64()).collect::<Vec<_>>())
    {
        Some(a) if a.len() == 2 && a.iter().all(|x| x.is_some()) => {
            Ok((a[0].unwrap() as usize, a[1].unwrap() as usize))
        }
        _ => Err(format!("{what}: expected a pair of integers, got {v}")),
    }
}

/// TensorFlow's output size and (before, after) padding for one axis.
pub fn tf_padding(input: usize, kernel: usize, stride: usize, same: bool) -> (usize, usize, usize) {
    if same {
        let out = input.div_ceil(stride);
        let total = ((out - 1) * stride + kernel).saturating_sub(input);
        (out, total / 2, total - total / 2)
    } else {
        ((input - kernel) / stride + 1, 0, 0)
    }
}

impl Converter {
    fn convert(&mut self, config: &Value, output_names: &[&str]) -> Result<(), String> {
        let layers = config["config"]["layers"]
            .as_array()
            .ok_or("model_config has no layer list (only functional Keras models are supported)")?;
        for layer in layers {
            self.layer(layer)?;
        }
        let outputs = config["config"]["output_layers"]
            .as_array()
            .ok_or("model_config has no output_layers")?;
        if outputs.len() != output_names.len() {
            return Err(format!(
                "model has {} outputs, expected {}",
                outputs.len(),
                output_names.len()
            ));
        }
        for (out, name) in outputs.iter().zip(output_names) {
            let src = out[0].as_str().ok_or("bad output_layers entry")?;
            let len = match self.shapes.get(src) {
                Some(Shape::Vector { len, .. }) => *len,
                _ => return Err(format!("output layer '{src}' is not a vector")),
            };
            self.graph.nodes.push(Node::new(
                "Identity",
                &format!("output_{name}"),
                &[src],
                &[name],
            ));
            self.graph.outputs.push(ValueInfo {
                name: name.to_string(),
                elem_type: ElemType::F32,
                dims: vec![Dim::Named("batch".into()), Dim::Fixed(len as i64)],
            });
        }
        Ok(())
    }

    fn weights_of(&self, layer: &str) -> Result<Vec<Weight>, String> {
        let g = self
            .weights
            .group(layer)
            .map_err(|e| format!("no weights for layer '{layer}': {e}"))?;
        let names = read_string_list_attr(&g, "weight_names")
            .map_err(|e| format!("layer '{layer}': unreadable weight_names: {e}"))?;
        names
            .into_iter()
            .map(|n| {
                let ds = g
                    .dataset(&n)
                    .map_err(|e| format!("layer '{layer}': missing weight '{n}': {e}"))?;
                let data = ds
                    .read_raw::<f32>()
                    .map_err(|e| format!("layer '{layer}': cannot read '{n}' as float32: {e}"))?;
                let short = n
                    .rsplit('/')
                    .next()
                    .unwrap_or(&n)
                    .trim_end_matches(":0")
                    .to_string();
                Ok((short, ds.shape(), data))
            })
            .collect()
    }

    fn single_input(&self, layer: &Value) -> Result<(String, Shape), String> {
        let ins = self.inputs(layer)?;
        if ins.len() != 1 {
            return Err(format!("layer '{}' expects one input", layer["name"]));
        }
        Ok(ins.into_iter().next().unwrap())
    }

    fn inputs(&self, layer: &Value) -> Result<Vec<(String, Shape)>, String> {
        let nodes = layer["inbound_nodes"]
            .as_array()
            .ok_or_else(|| format!("layer '{}' has no inbound_nodes", layer["name"]))?;
        if nodes.len() != 1 {
            return Err(format!(
                "layer '{}' is shared; not supported",
                layer["name"]
            ));
        }
        nodes[0]
            .as_array()
            .ok_or("bad inbound node")?
            .iter()
            .map(|i| {
                let name = i[0].as_str().ok_or("bad inbound node name")?.to_string();
                let shape = *self
                    .shapes
                    .get(&name)
                    .ok_or_else(|| format!("layer input '{name}' is not defined before use"))?;
                Ok((name, shape))
            })
            .collect()
    }

    fn push(&mut self, node: Node, out: &str, shape: Shape) {
        self.graph.nodes.push(node);
        self.shapes.insert(out.to_string(), shape);
    }

    fn activation(&mut self, name: &str, pre: &str, act: &str, shape: Shape) -> Result<(), String> {
        let node = match act {
            "linear" => Node::new("Identity", name, &[pre], &[name]),
            "relu" => Node::new("Relu", name, &[pre], &[name]),
            "softmax" => Node::new("Softmax", name, &[pre], &[name]).attr("axis", Attr::Int(-1)),
            other => {
                return Err(format!(
                    "layer '{name}': activation '{other}' is not supported"
                ))
            }
        };
        self.push(node, name, shape);
        Ok(())
    }

    fn layer(&mut self, layer: &Value) -> Result<(), String> {
        let class = layer["class_name"].as_str().unwrap_or("");
        let name = layer["name"]
            .as_str()
            .ok_or("layer without a name")?
            .to_string();
        match class {
            "InputLayer" => {
                let shape = cfg(layer, "batch_input_shape")
                    .as_array()
                    .ok_or("InputLayer without batch_input_shape")?;
                let dims: Vec<usize> = shape[1..]
                    .iter()
                    .filter_map(|d| d.as_u64())
                    .map(|d| d as usize)
                    .collect();
                if dims.len() != 3 {
                    return Err(format!(
                        "input '{name}' must be H×W×C with fixed sizes, got {shape:?}"
                    ));
                }
                let (h, w, c) = (dims[0], dims[1], dims[2]);
                self.graph.inputs.push(ValueInfo {
                    name: name.clone(),
                    elem_type: ElemType::F32,
                    dims: vec![
                        Dim::Named("batch".into()),
                        Dim::Fixed(c as i64),
                        Dim::Fixed(h as i64),
                        Dim::Fixed(w as i64),
                    ],
                });
                self.shapes.insert(name, Shape::Map { c, h, w });
            }
            "Conv2D" => {
                let (input, shape) = self.single_input(layer)?;
                let Shape::Map { c, h, w } = shape else {
                    return Err(format!("Conv2D '{name}' on a non-map input"));
                };
                if cfg(layer, "data_format")
                    .as_str()
                    .unwrap_or("channels_last")
                    != "channels_last"
                {
                    return Err(format!("Conv2D '{name}': only channels_last is supported"));
                }
                if let Ok(d) = pair(cfg(layer, "dilation_rate"), "dilation_rate") {
                    if d != (1, 1) {
                        return Err(format!("Conv2D '{name}': dilation is not supported"));
                    }
                }
                let (sh, sw) = pair(cfg(layer, "strides"), "strides")?;
                let same = match cfg(layer, "padding").as_str() {
                    Some("same") => true,
                    Some("valid") => false,
                    p => return Err(format!("Conv2D '{name}': padding {p:?} is not supported")),
                };
                let weights = self.weights_of(&name)?;
                let (_, kshape, kernel) = weights
                    .iter()
                    .find(|(n, _, _)| n == "kernel")
                    .ok_or_else(|| format!("Conv2D '{name}' has no kernel"))?;
                let [kh, kw, kin, kout] = kshape[..] else {
                    return Err(format!(
                        "Conv2D '{name}': kernel shape {kshape:?} is not 4-D"
                    ));
                };
                if kin != c {
                    return Err(format!(
                        "Conv2D '{name}': kernel expects {kin} channels, input has {c}"
                    ));
                }
                // HWIO -> OIHW
                let mut oihw = vec![0f32; kernel.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for i in 0..kin {
                            for o in 0..kout {
                                oihw[((o * kin + i) * kh + y) * kw + x] =
                                    kernel[((y * kw + x) * kin + i) * kout + o];
                            }
                        }
                    }
                }
                let (oh, pt, pb) = tf_padding(h, kh, sh, same);
                let (ow, pl, pr) = tf_padding(w, kw, sw, same);
                let wname = format!("{name}.weight");
                self.graph.initializers.push(Tensor::f32(
                    &wname,
                    &[kout as i64, kin as i64, kh as i64, kw as i64],
                    oihw,
                ));
                let mut ins = vec![input.as_str(), wname.as_str()];
                let bname = format!("{name}.bias");
                if let Some((_, _, bias)) = weights.iter().find(|(n, _, _)| n == "bias") {
                    self.graph
                        .initializers
                        .push(Tensor::f32(&bname, &[kout as i64], bias.clone()));
                    ins.push(&bname);
                }
                let pre = format!("{name}.conv");
                let node = Node::new("Conv", &pre, &ins, &[&pre])
                    .attr("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64]))
                    .attr("strides", Attr::Ints(vec![sh as i64, sw as i64]))
                    .attr(
                        "pads",
                        Attr::Ints(vec![pt as i64, pl as i64, pb as i64, pr as i64]),
                    );
                let out_shape = Shape::Map {
                    c: kout,
                    h: oh,
                    w: ow,
                };
                self.push(node, &pre, out_shape);
                let act = cfg(layer, "activation")
                    .as_str()
                    .unwrap_or("linear")
                    .to_string();
                self.activation(&name, &pre, &act, out_shape)?;
            }
            "BatchNormalization" => {
                let (input, shape) = self.single_input(layer)?;
                let Shape::Map { c, .. } = shape else {
                    return Err(format!("BatchNormalization '{name}' on a non-map input"));
                };
                let axis = cfg(layer, "axis").as_i64().unwrap_or(-1);
                if axis != -1 && axis != 3 {
                    return Err(format!(
                        "BatchNormalization '{name}': axis {axis} is not the channel axis"
                    ));
                }
                let eps = cfg(layer, "epsilon").as_f64().unwrap_or(1e-3) as f32;
                let weights = self.weights_of(&name)?;
                let get = |n: &str, default: f32| -> Vec<f32> {
                    weights
                        .iter()
                        .find(|(wn, _, _)| wn == n)
                        .map(|(_, _, d)| d.clone())
                        .unwrap_or_else(|| vec![default; c])
                };
                let params = [
                    ("gamma", get("gamma", 1.0)),
                    ("beta", get("beta", 0.0)),
                    ("moving_mean", get("moving_mean", 0.0)),
                    ("moving_variance", get("moving_variance", 1.0)),
                ];
                let mut ins = vec![input.clone()];
                for (pname, data) in params {
                    if data.len() != c {
                        return Err(format!(
                            "BatchNormalization '{name}': {pname} has {} values, expected {c}",
                            data.len()
                        ));
                    }
                    let tname = format!("{name}.{pname}");
                    self.graph
                        .initializers
                        .push(Tensor::f32(&tname, &[c as i64], data));
                    ins.push(tname);
                }
                let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
                let node = Node::new("BatchNormalization", &name, &ins, &[&name])
                    .attr("epsilon", Attr::Float(eps));
                self.push(node, &name, shape);
            }
            "Activation" => {
                let (input, shape) = self.single_input(layer)?;
                let act = cfg(layer, "activation")
                    .as_str()
                    .unwrap_or("linear")
                    .to_string();
                self.activation(&name, &input, &act, shape)?;
            }
            "Dropout" => {
                let (input, shape) = self.single_input(layer)?;
                self.push(
                    Node::new("Identity", &name, &[&input], &[&name]),
                    &name,
                    shape,
                );
            }
            "Add" => {
                let ins = self.inputs(layer)?;
                let shape = ins.first().ok_or("Add without inputs")?.1;
                let names: Vec<&str> = ins.iter().map(|(n, _)| n.as_str()).collect();
                self.push(Node::new("Sum", &name, &names, &[&name]), &name, shape);
            }
            "AveragePooling2D" => {
                let (input, shape) = self.single_input(layer)?;
                let Shape::Map { c, h, w } = shape else {
                    return Err(format!("AveragePooling2D '{name}' on a non-map input"));
                };
                let (kh, kw) = pair(cfg(layer, "pool_size"), "pool_size")?;
                let (sh, sw) = pair(cfg(layer, "strides"), "strides").unwrap_or((kh, kw));
                let same = cfg(layer, "padding").as_str() == Some("same");
                let (oh, pt, pb) = tf_padding(h, kh, sh, same);
                let (ow, pl, pr) = tf_padding(w, kw, sw, same);
                let node = Node::new("AveragePool", &name, &[&input], &[&name])
                    .attr("kernel_shape", Attr::Ints(vec![kh as i64, kw as i64]))
                    .attr("strides", Attr::Ints(vec![sh as i64, sw as i64]))
                    .attr(
                        "pads",
                        Attr::Ints(vec![pt as i64, pl as i64, pb as i64, pr as i64]),
                    )
                    .attr("count_include_pad", Attr::Int(0));
                self.push(node, &name, Shape::Map { c, h: oh, w: ow });
            }
            "Flatten" => {
                let (input, shape) = self.single_input(layer)?;
                let Shape::Map { c, h, w } = shape else {
                    return Err(format!("Flatten '{name}' on a non-map input"));
                };
                let node =
                    Node::new("Flatten", &name, &[&input], &[&name]).attr("axis", Attr::Int(1));
                self.push(
                    node,
                    &name,
                    Shape::Vector {
                        len: c * h * w,
                        from: Some((c, h, w)),
                    },
                );
            }
            "Dense" => {
                let (input, shape) = self.single_input(layer)?;
                let Shape::Vector { len, from } = shape else {
                    return Err(format!("Dense '{name}' on a non-vector input"));
                };
                let units = cfg(layer, "units").as_u64().ok_or("Dense without units")? as usize;
                let weights = self.weights_of(&name)?;
                let (_, kshape, kernel) = weights
                    .iter()
                    .find(|(n, _, _)| n == "kernel")
                    .ok_or_else(|| format!("Dense '{name}' has no kernel"))?;
                if kshape[..] != [len, units] {
                    return Err(format!(
                        "Dense '{name}': kernel {kshape:?} does not fit input {len} → {units}"
                    ));
                }
                let kernel = match from {
                    // Keras flattened (h, w, c); ONNX flattens (c, h, w): move each row.
                    Some((c, h, w)) => {
                        let mut out = vec![0f32; kernel.len()];
                        for ci in 0..c {
                            for y in 0..h {
                                for x in 0..w {
                                    let keras_row = (y * w + x) * c + ci;
                                    let onnx_row = (ci * h + y) * w + x;
                                    out[onnx_row * units..(onnx_row + 1) * units].copy_from_slice(
                                        &kernel[keras_row * units..(keras_row + 1) * units],
                                    );
                                }
                            }
                        }
                        out
                    }
                    None => kernel.clone(),
                };
                let wname = format!("{name}.kernel");
                self.graph.initializers.push(Tensor::f32(
                    &wname,
                    &[len as i64, units as i64],
                    kernel,
                ));
                let mm = format!("{name}.matmul");
                self.push(
                    Node::new("MatMul", &mm, &[&input, &wname], &[&mm]),
                    &mm,
                    Shape::Vector {
                        len: units,
                        from: None,
                    },
                );
                let mut pre = mm;
                if let Some((_, _, bias)) = weights.iter().find(|(n, _, _)| n == "bias") {
                    let bname = format!("{name}.bias");
                    self.graph.initializers.push(Tensor::f32(
                        &bname,
                        &[units as i64],
                        bias.clone(),
                    ));
                    let added = format!("{name}.biased");
                    self.push(
                        Node::new("Add", &added, &[&pre, &bname], &[&added]),
                        &added,
                        Shape::Vector {
                            len: units,
                            from: None,
                        },
                    );
                    pre = added;
                }
                let act = cfg(layer, "activation")
                    .as_str()
                    .unwrap_or("linear")
                    .to_string();
                self.activation(
                    &name,
                    &pre,
                    &act,
                    Shape::Vector {
                        len: units,
                        from: None,
                    },
                )?;
            }
            other => {
                return Err(format!(
                    "layer '{name}' of type {other} is not supported by the converter"
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::tf_padding;

    #[test]
    fn tensorflow_same_padding_puts_the_odd_pixel_after() {
        assert_eq!(tf_padding(64, 3, 2, true), (32, 0, 1));
        assert_eq!(tf_padding(64, 3, 1, true), (64, 1, 1));
        assert_eq!(tf_padding(64, 1, 2, true), (32, 0, 0));
        assert_eq!(tf_padding(16, 8, 1, true), (16, 3, 4));
        assert_eq!(tf_padding(16, 8, 1, false), (9, 0, 0));
    }
}
