//! A minimal ONNX protobuf writer: just enough of `onnx.proto` (ModelProto, GraphProto, NodeProto,
//! AttributeProto, TensorProto, ValueInfoProto) to emit the graphs this project builds itself: the
//! WideResNet converted from Keras HDF5, and small fixture graphs with known outputs for tests.
//! Field numbers follow onnx/onnx.proto (IR version 8).

const IR_VERSION: i64 = 8;

/// Element types we emit (TensorProto.DataType values).
#[derive(Clone, Copy, Debug)]
pub enum ElemType {
    F32 = 1,
    I64 = 7,
}

#[derive(Clone, Debug)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

impl Tensor {
    pub fn f32(name: &str, dims: &[i64], data: Vec<f32>) -> Tensor {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, data.len());
        Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data: TensorData::F32(data),
        }
    }

    pub fn i64(name: &str, dims: &[i64], data: Vec<i64>) -> Tensor {
        Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            data: TensorData::I64(data),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Tensor(Tensor),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op_type: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
}

impl Node {
    pub fn new(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            op_type: op_type.to_string(),
            name: name.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs: Vec::new(),
        }
    }

    pub fn attr(mut self, name: &str, value: Attr) -> Node {
        self.attrs.push((name.to_string(), value));
        self
    }
}

#[derive(Clone, Debug)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: ElemType,
    pub dims: Vec<Dim>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

/// Serialises a graph as an ONNX model with the default-domain opset `opset`.
pub fn encode_model(graph: &Graph, opset: i64, producer: &str) -> Vec<u8> {
    let mut m = Buf::default();
    m.int(1, IR_VERSION);
    m.string(2, producer);
    // A fixed producer version keeps converted files byte-identical across facetv releases, so their
    // sha256 can be pinned in the manifest; bump it only when the emitted graph changes.
    m.string(3, "converter-1");
    m.message(7, &encode_graph(graph));
    let mut op = Buf::default();
    op.string(1, "");
    op.int(2, opset);
    m.message(8, &op.0);
    m.0
}

fn encode_graph(g: &Graph) -> Vec<u8> {
    let mut b = Buf::default();
    for n in &g.nodes {
        b.message(1, &encode_node(n));
    }
    b.string(2, &g.name);
    for t in &g.initializers {
        b.message(5, &encode_tensor(t));
    }
    for v in &g.inputs {
        b.message(11, &encode_value_info(v));
    }
    for v in &g.outputs {
        b.message(12, &encode_value_info(v));
    }
    b.0
}

fn encode_node(n: &Node) -> Vec<u8> {
    let mut b = Buf::default();
    for i in &n.inputs {
        b.string(1, i);
    }
    for o in &n.outputs {
        b.string(2, o);
    }
    b.string(3, &n.name);
    b.string(4, &n.op_type);
    for (name, a) in &n.attrs {
        let mut ab = Buf::default();
        ab.string(1, name);
        match a {
            Attr::Float(f) => {
                ab.key(2, 5);
                ab.0.extend_from_slice(&f.to_le_bytes());
                ab.int(20, 1);
            }
            Attr::Int(i) => {
                ab.int(3, *i);
                ab.int(20, 2);
            }
            Attr::Tensor(t) => {
                ab.message(5, &encode_tensor(t));
                ab.int(20, 4);
            }
            Attr::Ints(v) => {
                let mut packed = Buf::default();
                for x in v {
                    packed.varint(*x as u64);
                }
                ab.bytes(8, &packed.0);
                ab.int(20, 7);
            }
        }
        b.message(5, &ab.0);
    }
    b.0
}

fn encode_tensor(t: &Tensor) -> Vec<u8> {
    let mut b = Buf::default();
    let mut dims = Buf::default();
    for d in &t.dims {
        dims.varint(*d as u64);
    }
    b.bytes(1, &dims.0);
    let (ty, raw): (ElemType, Vec<u8>) = match &t.data {
        TensorData::F32(v) => (
            ElemType::F32,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        TensorData::I64(v) => (
            ElemType::I64,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    };
    b.int(2, ty as i64);
    b.string(8, &t.name);
    b.bytes(9, &raw);
    b.0
}

fn encode_value_info(v: &ValueInfo) -> Vec<u8> {
    let mut shape = Buf::default();
    for d in &v.dims {
        let mut db = Buf::default();
        match d {
            Dim::Fixed(n) => db.int(1, *n),
            Dim::Named(s) => db.string(2, s),
        }
        shape.message(1, &db.0);
    }
    let mut tensor_type = Buf::default();
    tensor_type.int(1, v.elem_type as i64);
    tensor_type.message(2, &shape.0);
    let mut type_proto = Buf::default();
    type_proto.message(1, &tensor_type.0);
    let mut b = Buf::default();
    b.string(1, &v.name);
    b.message(2, &type_proto.0);
    b.0
}

#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn message(&mut self, field: u32, m: &[u8]) {
        self.bytes(field, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_protobuf_encoding() {
        let mut b = Buf::default();
        b.varint(300);
        assert_eq!(b.0, vec![0xAC, 0x02]);
        let mut b = Buf::default();
        b.int(1, -1);
        assert_eq!(
            b.0.len(),
            11,
            "negative int64 takes ten varint bytes plus the key"
        );
    }
}
