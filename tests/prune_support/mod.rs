//! Shared helpers of the pruning tests: small graphs stated as IR text (weights elided by hash and
//! filled with seeded pseudo-random values), and running them through the reference interpreter.
#![allow(dead_code)]

use carve::ir::{ConstData, Constant, Graph, Op, text};
use carve_runtime::interp::{Value, run};
use carve_runtime::{Data, Tensor};

/// A pseudo-random stream (LCG), the same on every platform.
pub struct Lcg(pub u64);

impl Lcg {
    /// Next value in `[-1, 1)`.
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Parses `src` and gives every elided constant seeded pseudo-random f32 values (the hash seeds it).
pub fn graph(src: &str) -> Graph {
    let mut g = text::parse(src).unwrap_or_else(|e| panic!("{e}"));
    for n in &mut g.nodes {
        if let Op::Constant(c) = &mut n.op
            && let ConstData::Elided { hash } = c.data
        {
            let mut r = Lcg(hash);
            let vals: Vec<f32> = (0..c.num_elements()).map(|_| r.next()).collect();
            let dims: Vec<u64> =
                c.ty.dims()
                    .unwrap()
                    .iter()
                    .map(|d| d.known().unwrap())
                    .collect();
            *c = Constant::from_f32s(&dims, &vals);
        }
    }
    g
}

/// Seeded pseudo-random inputs of `g` (static shapes).
pub fn inputs(g: &Graph, seed: u64) -> Vec<Value> {
    let mut r = Lcg(seed.wrapping_add(17));
    g.inputs
        .iter()
        .map(|&v| {
            let dims: Vec<usize> = g
                .ty(v)
                .as_tensor()
                .and_then(|t| t.dims())
                .unwrap()
                .iter()
                .map(|d| d.known().unwrap() as usize)
                .collect();
            let n = dims.iter().product();
            let data = (0..n).map(|_| 2.0 * r.next()).collect();
            Value::Tensor(Tensor::new(dims, Data::F32(data)).unwrap())
        })
        .collect()
}

/// The f32 outputs of `g` on `ins`.
pub fn outputs(g: &Graph, ins: &[Value]) -> Vec<Vec<f32>> {
    run(g, ins.to_vec())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|v| match v {
            Value::Tensor(Tensor {
                data: Data::F32(d), ..
            }) => d,
            other => panic!("not an f32 tensor: {other:?}"),
        })
        .collect()
}

/// Largest absolute difference between two output lists of equal shapes.
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "output sizes");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// A conv block with a residual add: conv1 (8 out) → relu → conv2 (8 → 8) added to conv1's output,
/// then a 1×1 conv to 3 channels. The 8 channels are one group (conv1's and conv2's filters, conv2's
/// and conv3's inputs).
pub const RESIDUAL: &str = "graph @residual(%x: f32[1,4,6,6]) -> (f32[1,3,6,6]) {
  %w1 = const f32[8,4,3,3] #0000000000000001
  %b1 = const f32[8] #0000000000000002
  %c1 = conv(%x, %w1, %b1) {pads=[1, 1, 1, 1]} : f32[1,8,6,6]
  %r1 = relu(%c1) : f32[1,8,6,6]
  %w2 = const f32[8,8,3,3] #0000000000000003
  %c2 = conv(%r1, %w2) {pads=[1, 1, 1, 1]} : f32[1,8,6,6]
  %s = add(%c2, %c1) : f32[1,8,6,6]
  %r2 = relu(%s) : f32[1,8,6,6]
  %w3 = const f32[3,8,1,1] #0000000000000004
  %y = conv(%r2, %w3) : f32[1,3,6,6]
  return %y
}
";

/// Two convs (4 and 6 filters) concatenated, batch-normalized, then a 1×1 conv reads the 10
/// channels; a depthwise conv on the first branch.
pub const CONCAT: &str = "graph @concat(%x: f32[1,3,5,5]) -> (f32[1,2,5,5]) {
  %wa = const f32[4,3,3,3] #0000000000000011
  %a = conv(%x, %wa) {pads=[1, 1, 1, 1]} : f32[1,4,5,5]
  %wd = const f32[4,1,3,3] #0000000000000012
  %bd = const f32[4] #0000000000000013
  %d = conv(%a, %wd, %bd) {group=4, pads=[1, 1, 1, 1]} : f32[1,4,5,5]
  %wb = const f32[6,3,1,1] #0000000000000014
  %b = conv(%x, %wb) : f32[1,6,5,5]
  %cat = concat(%d, %b) {axis=1} : f32[1,10,5,5]
  %g = const f32[10] #0000000000000015
  %be = const f32[10] #0000000000000016
  %m = const f32[10] #0000000000000017
  %v = const f32[10] [1.0, 2.0, 1.5, 0.5, 1.0, 3.0, 1.0, 2.0, 0.75, 1.25]
  %bn = batch_norm(%cat, %g, %be, %m, %v) : f32[1,10,5,5]
  %r = relu(%bn) : f32[1,10,5,5]
  %wc = const f32[2,10,1,1] #0000000000000018
  %y = conv(%r, %wc) : f32[1,2,5,5]
  return %y
}
";

/// A conv whose 6 channels are flattened (with the 2×2 spatial block) into a fully connected layer.
pub const FLATTEN_FC: &str = "graph @flatten_fc(%x: f32[1,2,4,4]) -> (f32[1,5]) {
  %w = const f32[6,2,3,3] #0000000000000021
  %c = conv(%x, %w) {strides=[2, 2], pads=[1, 1, 1, 1]} : f32[1,6,2,2]
  %r = relu(%c) : f32[1,6,2,2]
  %f = flatten(%r) {axis=1} : f32[1,24]
  %wf = const f32[24,5] #0000000000000022
  %bf = const f32[5] #0000000000000023
  %y = gemm(%f, %wf, %bf) : f32[1,5]
  return %y
}
";

/// A transformer feed-forward block: `x + W2·gelu(W1·x + b1) + b2` with 16 hidden neurons, then
/// layer norm over the 6-wide residual stream.
pub const FFN: &str = "graph @ffn(%x: f32[1,3,6]) -> (f32[1,3,6]) {
  %w1 = const f32[6,16] #0000000000000031
  %b1 = const f32[16] #0000000000000032
  %h = matmul(%x, %w1) : f32[1,3,16]
  %hb = add(%h, %b1) : f32[1,3,16]
  %a = gelu(%hb) : f32[1,3,16]
  %w2 = const f32[16,6] #0000000000000033
  %b2 = const f32[6] #0000000000000034
  %o = matmul(%a, %w2) : f32[1,3,6]
  %ob = add(%o, %b2) : f32[1,3,6]
  %s = add(%ob, %x) : f32[1,3,6]
  %g = const f32[6] #0000000000000035
  %be = const f32[6] #0000000000000036
  %y = layer_norm(%s, %g, %be) {axis=-1} : f32[1,3,6]
  return %y
}
";

/// `../shared/models/NAME/model.onnx`.
pub fn shared_model(name: &str) -> std::path::PathBuf {
    let dir = match std::env::var_os("CARVE_SHARED") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("shared"),
    };
    dir.join("models").join(name).join("model.onnx")
}
