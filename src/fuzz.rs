//! Differential random-graph testing: a generator of random valid graphs, and a check that runs each
//! one through the reference interpreter and through the JIT (1 and 2 threads) and compares.
//!
//! [`generate`] turns a `u64` seed into a [`Case`]: 1–3 inputs of rank 0–4 with dims 1–7, then 3–12
//! random nodes (plus the constants and helper nodes they need) picked among f32 unary math (relu,
//! sigmoid, tanh, exp on bounded values, abs, neg, sqrt of abs — of `|x| + 1` for rounded `x`),
//! broadcasting binary arithmetic (add/sub/mul/max/min, div by `|b| + 1`), matmul, reductions
//! (sum/mean/max/min over random axes, keepdims both ways), softmax, transpose, reshape, unsqueeze,
//! concat, slice, comparisons + where, casts to and from i32/i64 with integer add/mul,
//! quantize_linear/dequantize_linear (u8/i8, per tensor and per axis; a quantized value is sometimes a
//! graph output), `if` with captured values, and `loop` with a constant trip count and a scan output.
//! Every node goes through type inference ([`Graph::add_node`]); an op that does not fit is retried
//! with another.
//!
//! Values stay tame: inputs lie in [-2, 2]; the generator tracks a bound on every value's magnitude,
//! applies `exp` only to values bounded by 4 and multiplies only bounded values. Discontinuous ops
//! (casts to integers, comparisons, quantization) only read values that both engines compute exactly
//! (inputs, and relu/abs/neg/max/min/movement of them), so a last-bit difference in a float kernel
//! cannot flip a comparison or a rounding.
//!
//! [`check`] compares: the two JIT runs (1 and 2 threads) must agree bit for bit; floats must be
//! within `|got − expected| ≤ atol + rtol·|expected|` of the interpreter (NaN matches NaN) with
//! `rtol = 1e-5` and `atol = 1e-6 · scale`, where `scale ≥ 1` is the generator's bound on the magnitude
//! of the values the graph computes ([`Case::scale`]): kernels may sum in another order (matmul,
//! reductions, softmax) and use other polynomial approximations of exp/tanh/sigmoid, so errors of a
//! few ulps of the *largest intermediate* are expected; the absolute part scales with it so that
//! cancellation (`a − b` of two large, nearly equal values) is not reported as a bug. Everything else
//! (integers, bools, quantized bytes) must be exact. Measured headroom ([`Outcome::worst`]): at
//! `rtol = 1e-6`, `atol = 1e-7 · scale` the worst float error over seeds 0..20,000 was 0.78 of the
//! tolerance (after `sqrt` of rounded values became `sqrt(|x| + 1)`: `sqrt` near 0 turns a last-bit
//! difference into an unbounded relative one), so the tolerance used is 10× that; over seeds
//! 0..100,000 the worst error was then 0.052 of it.
//!
//! Regressions: a failing graph is written as IR text ([`to_text`]) whose first lines are comments
//! `// seed: N` and `// scale: S`; the inputs are regenerated from the seed and the graph's input types
//! ([`inputs_for`]), so a file replays even after the generator changes. `tests/random_graphs.rs`
//! runs seeds `0..1000` and replays every `tests/data/random_graphs/*.ir`. The long run:
//!
//! ```text
//! cargo run --release --example fuzz_graphs -- --count 100000 --start 0
//! ```
//!
//! writes each failing graph to `tests/data/random_graphs/seed_<N>.ir`.

use std::collections::BTreeMap;

use carve_codegen::prepare::concrete_shape;
use carve_ir::ops::control::{If, Loop};
use carve_ir::ops::elementwise::{
    Abs, Add, Cast, Div, Equal, Exp, Greater, Less, Max, Min, Mul, Neg, Relu, Sigmoid, Sqrt, Sub,
    Tanh, Where,
};
use carve_ir::ops::linalg::MatMul;
use carve_ir::ops::movement::{Concat, Identity, Reshape, Slice, Transpose, Unsqueeze};
use carve_ir::ops::quant::{DequantizeLinear, QuantizeLinear};
use carve_ir::ops::reduce::{Reduce, ReduceKind, Softmax};
use carve_ir::{Capture, ConstData, Constant, DType, Graph, Op, TensorType, Type, ValueId};
use carve_runtime::interp::{self, Value};
use carve_runtime::{Data, Tensor};

use crate::compiler::{Compiler, Engine};

/// Relative tolerance of float comparisons.
pub const RTOL: f64 = 1e-5;
/// Absolute tolerance of float comparisons, per unit of [`Case::scale`].
pub const ATOL: f64 = 1e-6;

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform f32 in `[lo, hi)`.
    pub fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit() as f32
    }

    /// One element of `xs` (which must not be empty).
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.range(0, xs.len() - 1)]
    }
}

/// A generated graph with its inputs.
#[derive(Debug, Clone)]
pub struct Case {
    /// The seed it was generated from (also seeds the inputs).
    pub seed: u64,
    /// The graph.
    pub graph: Graph,
    /// Input tensors, in graph input order.
    pub inputs: Vec<Tensor>,
    /// Bound on the magnitude of the values the graph computes (≥ 1); scales the absolute tolerance.
    pub scale: f64,
}

/// What one differential check saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The whole graph ran as native code (no fallback node, no segments, no interpreter engine).
    pub native: bool,
    /// Ops of the nodes that did not run natively (`"<engine>"` for a whole-graph interpreter engine).
    pub fallback_ops: Vec<String>,
    /// The largest float error seen, as a fraction of the allowed error (0 when all floats are equal;
    /// ≤ 1 when the check passes): how much headroom the tolerance has.
    pub worst: f64,
    /// Elementwise nodes computed inside another node's kernel (fused chains), in the 1-thread build.
    pub fused: usize,
}

/// A value the generator can use as an operand.
#[derive(Debug, Clone)]
struct V {
    id: ValueId,
    dtype: DType,
    shape: Vec<usize>,
    /// Bound on the magnitude of the elements.
    bound: f64,
    /// Computed without rounding (both engines must agree bit for bit).
    exact: bool,
}

/// Most elements a generated value may have.
const MAX_ELEMS: usize = 4096;

struct Gen {
    g: Graph,
    rng: Rng,
    vals: Vec<V>,
    next: usize,
}

/// Numpy-style broadcast of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

fn f32_tensor(shape: &[usize], rng: &mut Rng, lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.f32_in(lo, hi)).collect();
    Tensor {
        shape: shape.to_vec(),
        data: Data::F32(data),
    }
}

fn i64s(dims: &[u64], values: &[i64]) -> Constant {
    Constant::from_i64s(dims, values)
}

impl Gen {
    fn name(&mut self, p: &str) -> String {
        self.next += 1;
        format!("{p}{}", self.next)
    }

    /// Adds a node with one output and returns it (with its concrete shape).
    fn node(&mut self, op: Op, inputs: &[ValueId]) -> Result<(ValueId, Vec<usize>), String> {
        let n = self.name("n");
        let o = self.name("v");
        let out = self
            .g
            .add_node(n, op, inputs.iter().map(|&v| Some(v)).collect(), vec![o])
            .map_err(|e| e.to_string())?;
        let v = out[0];
        let shape = concrete_shape(&self.g, v).ok_or("output shape is not static")?;
        if shape.iter().product::<usize>() > MAX_ELEMS || shape.contains(&0) {
            return Err("output too large or empty".into());
        }
        Ok((v, shape))
    }

    fn push(&mut self, id: ValueId, dtype: DType, shape: Vec<usize>, bound: f64, exact: bool) -> V {
        let v = V {
            id,
            dtype,
            shape,
            bound,
            exact,
        };
        self.vals.push(v.clone());
        v
    }

    fn konst(&mut self, c: Constant) -> ValueId {
        let n = self.name("c");
        self.g.add_const(n, c)
    }

    fn const_f32(&mut self, shape: &[usize], lo: f32, hi: f32) -> ValueId {
        let t = f32_tensor(shape, &mut self.rng, lo, hi);
        self.konst(t.to_constant())
    }

    /// A constant f32 operand of `shape` with values in [-2, 2].
    fn const_operand(&mut self, shape: Vec<usize>) -> V {
        let id = self.const_f32(&shape, -2.0, 2.0);
        V {
            id,
            dtype: DType::F32,
            shape,
            bound: 2.0,
            exact: true,
        }
    }

    fn f32_vals(&self, pred: impl Fn(&V) -> bool) -> Vec<V> {
        self.vals
            .iter()
            .filter(|v| v.dtype == DType::F32 && pred(v))
            .cloned()
            .collect()
    }

    fn pick_f32(&mut self, pred: impl Fn(&V) -> bool) -> Result<V, String> {
        let vs = self.f32_vals(pred);
        if vs.is_empty() {
            return Err("no f32 operand fits".into());
        }
        // Favour recent values so chains form (and fuse).
        let k = if self.rng.chance(0.6) {
            vs.len() - 1 - self.rng.range(0, vs.len().min(3) - 1)
        } else {
            self.rng.range(0, vs.len() - 1)
        };
        Ok(vs[k].clone())
    }

    /// A shape that broadcasts against `s`: a suffix of it with some dims set to 1.
    fn suffix_shape(&mut self, s: &[usize]) -> Vec<usize> {
        let keep = self.rng.range(0, s.len());
        s[s.len() - keep..]
            .iter()
            .map(|&d| if self.rng.chance(0.3) { 1 } else { d })
            .collect()
    }

    /// A second f32 operand for a broadcasting binary op with `a`: an existing value or a constant.
    fn partner(&mut self, a: &V, max_bound: f64) -> V {
        let cands = self.f32_vals(|v| {
            v.bound <= max_bound
                && broadcast(&a.shape, &v.shape)
                    .is_some_and(|s| s.iter().product::<usize>() <= MAX_ELEMS)
        });
        if !cands.is_empty() && self.rng.chance(0.6) {
            return self.rng.pick(&cands).clone();
        }
        let s = if self.rng.chance(0.15) {
            // Broadcast the other way: a's shape with a leading dim.
            let mut s = vec![self.rng.range(1, 3)];
            s.extend(&a.shape);
            s
        } else {
            self.suffix_shape(&a.shape)
        };
        self.const_operand(s)
    }

    fn unary(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|_| true)?;
        let which = self.rng.range(0, 7);
        let (op, bound, exact): (Op, f64, bool) = match which {
            0 => (Relu {}.into(), a.bound, a.exact),
            1 => (Sigmoid {}.into(), 1.0, false),
            2 => (Tanh {}.into(), 1.0, false),
            3 => (Abs {}.into(), a.bound, a.exact),
            4 => (Neg {}.into(), a.bound, a.exact),
            5 if a.bound <= 4.0 => (Exp {}.into(), a.bound.exp(), false),
            _ => {
                // sqrt(|a|), or sqrt(|a| + 1) when a is rounded: sqrt's slope is unbounded at 0, so a
                // last-bit difference in a tiny input would become a large one.
                let (mut x, _) = self.node(Abs {}.into(), &[a.id])?;
                if !a.exact {
                    let one = self.konst(Constant::from_f32s(&[], &[1.0]));
                    x = self.node(Add {}.into(), &[x, one])?.0;
                }
                let (y, s) = self.node(Sqrt {}.into(), &[x])?;
                self.push(y, DType::F32, s, a.bound.sqrt().max(1.0), false);
                return Ok(());
            }
        };
        let (y, s) = self.node(op, &[a.id])?;
        self.push(y, DType::F32, s, bound, exact);
        Ok(())
    }

    fn binary(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| v.bound <= 1e3)?;
        let which = self.rng.range(0, 5);
        let b = self.partner(&a, 1e3);
        let (op, bound, exact): (Op, f64, bool) = match which {
            0 => (Add {}.into(), a.bound + b.bound, false),
            1 => (Sub {}.into(), a.bound + b.bound, false),
            2 => (Mul {}.into(), a.bound * b.bound, false),
            3 => (Max {}.into(), a.bound.max(b.bound), a.exact && b.exact),
            4 => (Min {}.into(), a.bound.max(b.bound), a.exact && b.exact),
            _ => {
                // a / (|b| + 1): the divisor stays ≥ 1.
                let (x, _) = self.node(Abs {}.into(), &[b.id])?;
                let one = self.konst(Constant::from_f32s(&[], &[1.0]));
                let (d, _) = self.node(Add {}.into(), &[x, one])?;
                let (y, s) = self.node(Div {}.into(), &[a.id, d])?;
                self.push(y, DType::F32, s, a.bound, false);
                return Ok(());
            }
        };
        let (y, s) = self.node(op, &[a.id, b.id])?;
        self.push(y, DType::F32, s, bound, exact);
        Ok(())
    }

    fn matmul(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| !v.shape.is_empty() && v.bound <= 100.0)?;
        let k = a.shape[a.shape.len() - 1];
        // An existing [K, N] value, else a constant [.., K, N].
        let cands = self.f32_vals(|v| v.shape.len() == 2 && v.shape[0] == k && v.bound <= 100.0);
        let (b, bb) = if !cands.is_empty() && self.rng.chance(0.5) {
            let b = self.rng.pick(&cands).clone();
            (b.id, b.bound)
        } else {
            let n = self.rng.range(1, 7);
            let mut s = vec![k, n];
            if a.shape.len() >= 3 && self.rng.chance(0.3) {
                s.insert(0, a.shape[a.shape.len() - 3]);
            }
            (self.const_f32(&s, -1.0, 1.0), 1.0)
        };
        let (y, s) = self.node(MatMul {}.into(), &[a.id, b])?;
        self.push(y, DType::F32, s, a.bound * bb * k as f64, false);
        Ok(())
    }

    fn random_axes(&mut self, rank: usize) -> Vec<i64> {
        let mut axes: Vec<i64> = (0..rank as i64).filter(|_| self.rng.chance(0.5)).collect();
        if axes.is_empty() {
            axes.push(self.rng.range(0, rank - 1) as i64);
        }
        // Some negative spellings.
        axes.iter()
            .map(|&x| {
                if self.rng.chance(0.3) {
                    x - rank as i64
                } else {
                    x
                }
            })
            .collect()
    }

    fn reduce(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| !v.shape.is_empty() && v.bound <= 1e3)?;
        let axes = self.random_axes(a.shape.len());
        let n: usize = axes
            .iter()
            .map(|&x| a.shape[x.rem_euclid(a.shape.len() as i64) as usize])
            .product();
        let kinds = [
            ReduceKind::Sum,
            ReduceKind::Mean,
            ReduceKind::Max,
            ReduceKind::Min,
        ];
        let kind = *self.rng.pick(&kinds);
        let (bound, exact) = match kind {
            ReduceKind::Sum => (a.bound * n as f64, false),
            ReduceKind::Max | ReduceKind::Min => (a.bound, a.exact),
            _ => (a.bound, false),
        };
        let keepdims = self.rng.chance(0.5);
        let ax = self.konst(i64s(&[axes.len() as u64], &axes));
        let op = Reduce {
            kind,
            keepdims,
            noop_with_empty_axes: false,
        };
        let (y, s) = self.node(op.into(), &[a.id, ax])?;
        self.push(y, DType::F32, s, bound, exact);
        Ok(())
    }

    fn softmax(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| !v.shape.is_empty() && v.bound <= 1e3)?;
        let r = a.shape.len() as i64;
        let axis = self.rng.range(0, 2 * r as usize - 1) as i64 - r;
        let op = Softmax {
            axis,
            ..Softmax::default()
        };
        let (y, s) = self.node(op.into(), &[a.id])?;
        self.push(y, DType::F32, s, 1.0, false);
        Ok(())
    }

    fn movement(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|_| true)?;
        let r = a.shape.len();
        let (y, s) = match self.rng.range(0, 4) {
            0 if r >= 2 => {
                let mut perm: Vec<i64> = (0..r as i64).collect();
                for i in (1..r).rev() {
                    let j = self.rng.range(0, i);
                    perm.swap(i, j);
                }
                let op = Transpose { perm: Some(perm) };
                self.node(op.into(), &[a.id])?
            }
            1 => {
                // Reshape to a random factorization of the element count (sometimes with -1).
                let mut n: usize = a.shape.iter().product();
                let mut dims: Vec<i64> = Vec::new();
                while n > 1 && dims.len() < 3 {
                    let divs: Vec<usize> = (2..=n).filter(|&d| n.is_multiple_of(d)).collect();
                    let d = *self.rng.pick(&divs);
                    dims.push(d as i64);
                    n /= d;
                }
                if n > 1 {
                    dims.push(n as i64);
                }
                if dims.is_empty() || self.rng.chance(0.2) {
                    dims.insert(0, 1);
                }
                if self.rng.chance(0.3) {
                    let k = self.rng.range(0, dims.len() - 1);
                    dims[k] = -1;
                }
                let shape = self.konst(i64s(&[dims.len() as u64], &dims));
                self.node(Reshape::default().into(), &[a.id, shape])?
            }
            2 if r < 4 => {
                let axis = self.rng.range(0, r) as i64;
                let ax = self.konst(i64s(&[1], &[axis]));
                self.node(Unsqueeze {}.into(), &[a.id, ax])?
            }
            3 if r >= 1 => {
                // Slice one axis: step 1 or 2 forwards, or the whole axis reversed.
                let axis = self.rng.range(0, r - 1);
                let d = a.shape[axis] as i64;
                let (start, end, step) = if self.rng.chance(0.2) {
                    (d - 1, -d - 1, -1)
                } else {
                    let start = self.rng.range(0, d as usize - 1) as i64;
                    let end = self.rng.range(start as usize + 1, d as usize) as i64;
                    let step = if self.rng.chance(0.3) { 2 } else { 1 };
                    // Sometimes spell the start from the end.
                    let start = if self.rng.chance(0.3) {
                        start - d
                    } else {
                        start
                    };
                    (start, end, step)
                };
                let st = self.konst(i64s(&[1], &[start]));
                let en = self.konst(i64s(&[1], &[end]));
                let ax = self.konst(i64s(&[1], &[axis as i64]));
                let sp = self.konst(i64s(&[1], &[step]));
                self.node(Slice {}.into(), &[a.id, st, en, ax, sp])?
            }
            _ if r >= 1 => {
                // Concat with a value (or constant) equal in every dim but the axis.
                let axis = self.rng.range(0, r - 1);
                let cands = self.f32_vals(|v| {
                    v.shape.len() == r && (0..r).all(|i| i == axis || v.shape[i] == a.shape[i])
                });
                let b = if self.rng.chance(0.7) {
                    self.rng.pick(&cands).clone()
                } else {
                    let mut s = a.shape.clone();
                    s[axis] = self.rng.range(1, 3);
                    self.const_operand(s)
                };
                let axis = if self.rng.chance(0.3) {
                    axis as i64 - r as i64
                } else {
                    axis as i64
                };
                let (y, s) = self.node(Concat { axis }.into(), &[a.id, b.id])?;
                self.push(y, DType::F32, s, a.bound.max(b.bound), a.exact && b.exact);
                return Ok(());
            }
            _ => return Err("no movement fits".into()),
        };
        self.push(y, DType::F32, s, a.bound, a.exact);
        Ok(())
    }

    /// `where(cmp(a, b), x, y)` with `a`, `b` computed exactly.
    fn select(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| v.exact)?;
        let b = self.partner(&a, f64::INFINITY);
        if !b.exact {
            return Err("inexact comparison operand".into());
        }
        let cmp: Op = match self.rng.range(0, 2) {
            0 => Greater {}.into(),
            1 => Less {}.into(),
            _ => Equal {}.into(),
        };
        let (c, cs) = self.node(cmp, &[a.id, b.id])?;
        self.push(c, DType::Bool, cs.clone(), 1.0, true);
        let x = self.pick_f32(|v| broadcast(&cs, &v.shape).is_some())?;
        let cx = broadcast(&cs, &x.shape).unwrap_or_default();
        let y = self.partner(
            &V {
                shape: cx,
                ..x.clone()
            },
            f64::INFINITY,
        );
        let (w, s) = self.node(Where {}.into(), &[c, x.id, y.id])?;
        self.push(w, DType::F32, s, x.bound.max(y.bound), x.exact && y.exact);
        Ok(())
    }

    /// Cast an exact f32 value to i32/i64, integer add/mul, cast back.
    fn integer(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| v.exact && v.bound <= 100.0)?;
        let dt = if self.rng.chance(0.5) {
            DType::I32
        } else {
            DType::I64
        };
        let cast = |to| Cast {
            to,
            ..Cast::default()
        };
        let (i, s) = self.node(cast(dt).into(), &[a.id])?;
        let iv = self.push(i, dt, s.clone(), a.bound.trunc(), true);
        // Integer operand: another integer value of the same dtype, or a small constant.
        let others: Vec<V> = self
            .vals
            .iter()
            .filter(|v| v.dtype == dt && v.bound <= 1e3 && broadcast(&s, &v.shape).is_some())
            .cloned()
            .collect();
        let (b, bb) = if self.rng.chance(0.5) {
            let b = self.rng.pick(&others).clone();
            (b.id, b.bound)
        } else {
            let cs = self.suffix_shape(&s);
            let n: usize = cs.iter().product();
            let vals: Vec<i64> = (0..n).map(|_| self.rng.range(0, 6) as i64 - 3).collect();
            let t = match dt {
                DType::I32 => Tensor {
                    shape: cs,
                    data: Data::I32(vals.iter().map(|&x| x as i32).collect()),
                },
                _ => Tensor {
                    shape: cs,
                    data: Data::I64(vals),
                },
            };
            (self.konst(t.to_constant()), 3.0)
        };
        let (op, bound): (Op, f64) = if self.rng.chance(0.5) {
            (Add {}.into(), iv.bound + bb)
        } else {
            (Mul {}.into(), iv.bound * bb)
        };
        let (r, rs) = self.node(op, &[i, b])?;
        self.push(r, dt, rs, bound, true);
        if self.rng.chance(0.7) {
            let (f, fs) = self.node(cast(DType::F32).into(), &[r])?;
            self.push(f, DType::F32, fs, bound, true);
        }
        Ok(())
    }

    /// quantize_linear then dequantize_linear of an exact value (u8 or i8; per tensor or per axis).
    fn quant(&mut self) -> Result<(), String> {
        let a = self.pick_f32(|v| v.exact && v.bound <= 1e3)?;
        let signed = self.rng.chance(0.5);
        let per_axis = !a.shape.is_empty() && self.rng.chance(0.5);
        let axis = if per_axis {
            self.rng.range(0, a.shape.len() - 1)
        } else {
            0
        };
        let n = if per_axis { a.shape[axis] } else { 1 };
        let dims: Vec<u64> = if per_axis { vec![n as u64] } else { vec![] };
        // Scales that cover most of the range (some values saturate).
        let scales: Vec<f32> = (0..n)
            .map(|_| (a.bound as f32 / self.rng.f32_in(60.0, 200.0)).max(1e-3))
            .collect();
        let zps: Vec<i64> = (0..n)
            .map(|_| {
                if signed {
                    self.rng.range(0, 20) as i64 - 10
                } else {
                    self.rng.range(118, 138) as i64
                }
            })
            .collect();
        let scale = self.konst(Constant::from_f32s(&dims, &scales));
        let zp_t = Tensor {
            shape: dims.iter().map(|&d| d as usize).collect(),
            data: if signed {
                Data::I8(zps.iter().map(|&z| z as i8).collect())
            } else {
                Data::U8(zps.iter().map(|&z| z as u8).collect())
            },
        };
        let zp = self.konst(zp_t.to_constant());
        let q = QuantizeLinear {
            axis: axis as i64,
            ..QuantizeLinear::default()
        };
        let (qv, qs) = self.node(q.into(), &[a.id, scale, zp])?;
        let dt = if signed { DType::I8 } else { DType::U8 };
        self.push(qv, dt, qs, 255.0, true);
        if self.rng.chance(0.25) {
            // Leave the quantized bytes as a graph output (compared exactly).
            return Ok(());
        }
        let d = DequantizeLinear {
            axis: axis as i64,
            ..DequantizeLinear::default()
        };
        let (dv, ds) = self.node(d.into(), &[qv, scale, zp])?;
        self.push(dv, DType::F32, ds, a.bound * 1.1 + 1.0, false);
        Ok(())
    }

    /// A bool scalar: a graph input, or `max(x) > 0` of an exact value.
    fn condition(&mut self) -> Result<ValueId, String> {
        if let Some(c) = self
            .vals
            .iter()
            .find(|v| v.dtype == DType::Bool && v.shape.is_empty())
            && self.rng.chance(0.5)
        {
            return Ok(c.id);
        }
        let a = self.pick_f32(|v| v.exact)?;
        let op = Reduce {
            kind: ReduceKind::Max,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        let (m, _) = self.node(op.into(), &[a.id])?;
        let zero = self.konst(Constant::from_f32s(&[], &[0.0]));
        let (c, _) = self.node(Greater {}.into(), &[m, zero])?;
        self.push(c, DType::Bool, vec![], 1.0, true);
        Ok(c)
    }

    /// A branch or body graph applying a random tame unary op to a captured value.
    fn capture(&mut self, sub: &mut Graph, outer: ValueId) -> ValueId {
        let n = self.name("cap");
        let inner = sub.add_value(n, self.g.ty(outer).clone());
        sub.captures.push(Capture { inner, outer });
        inner
    }

    fn sub_node(&mut self, sub: &mut Graph, op: Op, inputs: &[ValueId]) -> Result<ValueId, String> {
        let n = self.name("n");
        let o = self.name("v");
        let out = sub
            .add_node(n, op, inputs.iter().map(|&v| Some(v)).collect(), vec![o])
            .map_err(|e| e.to_string())?;
        Ok(out[0])
    }

    fn tame_unary(&mut self) -> Op {
        match self.rng.range(0, 3) {
            0 => Relu {}.into(),
            1 => Tanh {}.into(),
            2 => Sigmoid {}.into(),
            _ => Neg {}.into(),
        }
    }

    fn if_node(&mut self) -> Result<(), String> {
        let c = self.condition()?;
        let a = self.pick_f32(|_| true)?;
        let mut branches = Vec::new();
        for name in ["then", "else"] {
            let mut b = Graph::new(name);
            let x = self.capture(&mut b, a.id);
            let op = self.tame_unary();
            let mut y = self.sub_node(&mut b, op, &[x])?;
            if self.rng.chance(0.5) {
                let k = self.rng.f32_in(-1.0, 1.0);
                let n = self.name("c");
                let kc = b.add_const(n, Constant::from_f32s(&[], &[k]));
                y = self.sub_node(&mut b, Add {}.into(), &[y, kc])?;
            }
            b.outputs = vec![y];
            branches.push(b);
        }
        let else_branch = branches.pop().ok_or("no branch")?;
        let then_branch = branches.pop().ok_or("no branch")?;
        let op = If {
            then_branch,
            else_branch,
        };
        let (y, s) = self.node(op.into(), &[c])?;
        self.push(y, DType::F32, s, a.bound + 1.0, false);
        Ok(())
    }

    /// `loop` M times (constant): `y ← f(y) + x` with `x` captured; outputs the final `y` and the
    /// stacked per-iteration values.
    fn loop_node(&mut self) -> Result<(), String> {
        let y0 = self.pick_f32(|v| v.bound <= 1e3 && v.shape.len() < 4)?;
        let x = self.pick_f32(|v| broadcast(&y0.shape, &v.shape).as_ref() == Some(&y0.shape))?;
        let m = self.rng.range(1, 4);
        let mut body = Graph::new("body");
        let i_name = self.name("i");
        body.add_input(i_name, Type::Tensor(TensorType::scalar(DType::I64)));
        let c_name = self.name("cond");
        let cond = body.add_input(c_name, Type::Tensor(TensorType::scalar(DType::Bool)));
        let y_name = self.name("y");
        let y = body.add_input(y_name, self.g.ty(y0.id).clone());
        let cx = self.capture(&mut body, x.id);
        let op = self.tame_unary();
        let fy = self.sub_node(&mut body, op, &[y])?;
        let next = self.sub_node(&mut body, Add {}.into(), &[fy, cx])?;
        let c_out = self.sub_node(&mut body, Identity {}.into(), &[cond])?;
        let scan = self.sub_node(&mut body, Identity {}.into(), &[next])?;
        body.outputs = vec![c_out, next, scan];
        let mv = self.konst(i64s(&[], &[m as i64]));
        let n = self.name("n");
        let names = vec![self.name("v"), self.name("v")];
        let out = self
            .g
            .add_node(
                n,
                Loop { body }.into(),
                vec![Some(mv), None, Some(y0.id)],
                names,
            )
            .map_err(|e| e.to_string())?;
        let bound = y0.bound + m as f64 * (x.bound + y0.bound.max(1.0));
        for &o in &out {
            let s = concrete_shape(&self.g, o).ok_or("loop output shape is not static")?;
            self.push(o, DType::F32, s, bound, false);
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        match self.rng.range(0, 99) {
            0..=17 => self.unary(),
            18..=37 => self.binary(),
            38..=44 => self.matmul(),
            45..=52 => self.reduce(),
            53..=57 => self.softmax(),
            58..=71 => self.movement(),
            72..=78 => self.select(),
            79..=85 => self.integer(),
            86..=91 => self.quant(),
            92..=95 => self.if_node(),
            _ => self.loop_node(),
        }
    }
}

/// Values read by some node of `g` (directly or as a capture of a subgraph).
fn used_values(g: &Graph) -> Vec<ValueId> {
    let mut used = Vec::new();
    for n in &g.nodes {
        used.extend(n.inputs.iter().flatten().copied());
        for sub in n.op.subgraphs() {
            used.extend(sub.captures.iter().map(|c| c.outer));
        }
    }
    used
}

/// Generates the random graph and inputs of `seed` (deterministic).
pub fn generate(seed: u64) -> Case {
    let mut gn = Gen {
        g: Graph::new(format!("random_{seed}")),
        rng: Rng::new(seed),
        vals: Vec::new(),
        next: 0,
    };
    let n_inputs = gn.rng.range(1, 3);
    for i in 0..n_inputs {
        let rank = *gn.rng.pick(&[0usize, 1, 2, 2, 3, 3, 4]);
        let mut shape: Vec<usize> = (0..rank).map(|_| gn.rng.range(1, 7)).collect();
        while shape.iter().product::<usize>() > 512 {
            shape.remove(0);
        }
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let id = gn.g.add_input(
            format!("x{i}"),
            Type::Tensor(TensorType::known(DType::F32, &dims)),
        );
        gn.push(id, DType::F32, shape, 2.0, true);
    }
    if gn.rng.chance(0.15) {
        let id =
            gn.g.add_input("flag", Type::Tensor(TensorType::scalar(DType::Bool)));
        gn.push(id, DType::Bool, vec![], 1.0, true);
    }
    let target = gn.rng.range(3, 12);
    let mut made = 0;
    let mut attempts = 0;
    while made < target && attempts < 200 {
        attempts += 1;
        let saved = (gn.g.clone(), gn.vals.len());
        match gn.step() {
            Ok(()) => made += 1,
            Err(_) => {
                gn.g = saved.0;
                gn.vals.truncate(saved.1);
            }
        }
    }
    // Outputs: the last value and every computed value nothing reads (at most 4), in value order.
    let used = used_values(&gn.g);
    let computed: Vec<&V> = gn
        .vals
        .iter()
        .filter(|v| !gn.g.inputs.contains(&v.id))
        .collect();
    let mut outputs: Vec<ValueId> = computed
        .iter()
        .filter(|v| !used.contains(&v.id))
        .map(|v| v.id)
        .collect();
    if let Some(last) = computed.last()
        && !outputs.contains(&last.id)
    {
        outputs.push(last.id);
    }
    if outputs.len() > 4 {
        outputs.drain(..outputs.len() - 4);
    }
    if outputs.is_empty() {
        // Nothing could be generated: fall back to relu of the first input.
        let x = gn.g.inputs[0];
        if let Ok((y, _)) = gn.node(Relu {}.into(), &[x]) {
            outputs.push(y);
        }
    }
    gn.g.outputs = outputs;
    let scale = gn
        .vals
        .iter()
        .filter(|v| v.dtype == DType::F32)
        .map(|v| v.bound)
        .fold(1.0, f64::max);
    // The generator only makes inputs inputs_for handles.
    let inputs = inputs_for(&gn.g, seed).unwrap_or_default();
    Case {
        seed,
        graph: gn.g,
        inputs,
        scale,
    }
}

/// Inputs for `g` from `seed` and the input types alone: f32 uniform in [-2, 2), bool fair coins,
/// i32/i64 uniform in -5..=5. Errors on another input type or a shape that is not static.
pub fn inputs_for(g: &Graph, seed: u64) -> Result<Vec<Tensor>, String> {
    let mut rng = Rng::new(seed ^ 0xA5A5_5A5A_0F0F_F0F0);
    g.inputs
        .iter()
        .map(|&v| {
            let shape = concrete_shape(g, v).ok_or("input shape is not static")?;
            let n: usize = shape.iter().product();
            let dtype = g.ty(v).as_tensor().map(|t| t.dtype);
            let data = match dtype {
                Some(DType::F32) => Data::F32((0..n).map(|_| rng.f32_in(-2.0, 2.0)).collect()),
                Some(DType::Bool) => Data::Bool((0..n).map(|_| rng.chance(0.5)).collect()),
                Some(DType::I32) => {
                    Data::I32((0..n).map(|_| rng.range(0, 10) as i32 - 5).collect())
                }
                Some(DType::I64) => {
                    Data::I64((0..n).map(|_| rng.range(0, 10) as i64 - 5).collect())
                }
                other => return Err(format!("unsupported input type {other:?}")),
            };
            Ok(Tensor { shape, data })
        })
        .collect()
}

fn tensors(vs: Vec<Value>, who: &str) -> Result<Vec<Tensor>, String> {
    vs.into_iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(t),
            other => Err(format!("{who} returned a {}", other.kind())),
        })
        .collect()
}

/// Runs `graph` on `inputs` in the interpreter and in the JIT with 1 and 2 threads. Errors (with a
/// message naming the output and element) when the JIT runs differ in any bit, or when a JIT output is
/// not within tolerance of the interpreter's (see the module doc; `scale` multiplies [`ATOL`]), or when
/// anything fails to compile or run.
pub fn check(graph: &Graph, inputs: &[Tensor], scale: f64) -> Result<Outcome, String> {
    let values: Vec<Value> = inputs.iter().cloned().map(Value::Tensor).collect();
    let expected = interp::run(graph, values.clone()).map_err(|e| format!("interpreter: {e}"))?;
    let expected = tensors(expected, "the interpreter")?;
    let model = crate::Model {
        graph: graph.clone(),
        ir_version: 8,
        opsets: BTreeMap::new(),
        producer: String::new(),
        metadata: Vec::new(),
        warnings: Vec::new(),
    };
    let mut outcome = Outcome::default();
    let mut runs = Vec::new();
    for threads in [1, 2] {
        let cm = Compiler::new()
            .threads(threads)
            .compile(&model)
            .map_err(|e| format!("compile ({threads} threads): {e}"))?;
        let inst = cm
            .instance_for(&values)
            .map_err(|e| format!("instance ({threads} threads): {e}"))?;
        if threads == 1 {
            outcome = match &inst.engine {
                Engine::Native(_) => Outcome {
                    native: inst.report.fallbacks.is_empty(),
                    fallback_ops: inst.report.fallbacks.iter().map(|f| f.op.clone()).collect(),
                    worst: 0.0,
                    fused: inst.report.fused,
                },
                Engine::Segmented(_) => Outcome {
                    native: false,
                    fallback_ops: vec!["<segments>".into()],
                    worst: 0.0,
                    fused: inst.report.fused,
                },
                Engine::Interpreter { .. } => Outcome {
                    native: false,
                    fallback_ops: vec!["<interpreter>".into()],
                    worst: 0.0,
                    fused: inst.report.fused,
                },
            };
        }
        let out = inst
            .run(values.clone())
            .map_err(|e| format!("run ({threads} threads): {e}"))?;
        runs.push(tensors(out, "the JIT")?);
    }
    let bits = |ts: &[Tensor]| -> Vec<(Vec<usize>, Option<Vec<u8>>)> {
        ts.iter()
            .map(|t| (t.shape.clone(), t.data.to_le_bytes()))
            .collect()
    };
    if bits(&runs[0]) != bits(&runs[1]) {
        return Err("JIT results differ between 1 and 2 threads".into());
    }
    if runs[0].len() != expected.len() {
        return Err(format!(
            "JIT gave {} outputs, the interpreter {}",
            runs[0].len(),
            expected.len()
        ));
    }
    for (k, (a, e)) in runs[0].iter().zip(&expected).enumerate() {
        carve_codegen::testing::compare(a, e, RTOL, ATOL * scale)
            .map_err(|m| format!("output {k}: {m}"))?;
        if let (Data::F32(a), Data::F32(e)) = (&a.data, &e.data) {
            for (&x, &y) in a.iter().zip(e) {
                let (x, y) = (f64::from(x), f64::from(y));
                if x != y && !(x.is_nan() && y.is_nan()) {
                    let allowed = ATOL * scale + RTOL * y.abs();
                    outcome.worst = outcome.worst.max((x - y).abs() / allowed);
                }
            }
        }
    }
    Ok(outcome)
}

/// The element list `[..]` of a dense constant the generator makes (f32 or integers).
fn elements(c: &Constant) -> Option<String> {
    let items: Vec<String> = match (&c.data, c.ty.dtype) {
        (ConstData::Bytes(b), DType::F32) => b
            .as_bytes()
            .chunks_exact(4)
            .map(|w| format!("{:?}", f32::from_le_bytes([w[0], w[1], w[2], w[3]])))
            .collect(),
        _ => c.to_i64s()?.iter().map(|x| x.to_string()).collect(),
    };
    Some(format!("[{}]", items.join(", ")))
}

/// Every constant of `g` and its subgraphs by printed content hash, with its element list.
fn constant_texts(g: &Graph, out: &mut Vec<(String, String)>) {
    for n in &g.nodes {
        if let Op::Constant(c) = &n.op
            && let Some(e) = elements(c)
        {
            out.push((format!("#{:016x}", c.content_hash()), e));
        }
        for sub in n.op.subgraphs() {
            constant_texts(sub, out);
        }
    }
}

/// The IR text of a case: comment lines `// seed: N` and `// scale: S`, then the graph, with every
/// constant written out in full (the printer elides large ones as a `#hash`, which would not replay).
pub fn to_text(case: &Case) -> String {
    let mut text = carve_ir::text::print(&case.graph);
    let mut consts = Vec::new();
    constant_texts(&case.graph, &mut consts);
    for (hash, elems) in consts {
        text = text.replace(&hash, &elems);
    }
    format!("// seed: {}\n// scale: {:?}\n{text}", case.seed, case.scale)
}

/// Reads a case written by [`to_text`]: the graph from the text, the inputs regenerated from the seed
/// (a missing `// scale:` line means 1).
pub fn from_text(src: &str) -> Result<Case, String> {
    let header = |key: &str| {
        src.lines()
            .filter_map(|l| l.trim().strip_prefix("//"))
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let seed: u64 = header("seed:")
        .ok_or("no `// seed: N` line")?
        .parse()
        .map_err(|e| format!("bad seed: {e}"))?;
    let scale: f64 = match header("scale:") {
        Some(s) => s.parse().map_err(|e| format!("bad scale: {e}"))?,
        None => 1.0,
    };
    let graph = carve_ir::text::parse(src).map_err(|e| e.to_string())?;
    let inputs = inputs_for(&graph, seed)?;
    Ok(Case {
        seed,
        graph,
        inputs,
        scale,
    })
}

/// The ops of `g` and its subgraphs (constants excluded), with their counts.
pub fn op_counts(g: &Graph, counts: &mut BTreeMap<&'static str, usize>) {
    for n in &g.nodes {
        if n.op.name() != "const" {
            *counts.entry(n.op.name()).or_default() += 1;
        }
        for sub in n.op.subgraphs() {
            op_counts(sub, counts);
        }
    }
}

/// [`check`] with panics turned into errors (`"panic: <message>"`), so one crashing graph does not stop
/// a long run.
pub fn check_catching(graph: &Graph, inputs: &[Tensor], scale: f64) -> Result<Outcome, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(graph, inputs, scale)))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        })
}
