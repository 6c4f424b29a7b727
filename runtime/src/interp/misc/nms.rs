//! `non_max_suppression`: per batch and class, greedy selection of boxes by descending score, dropping
//! boxes whose IoU with an already selected one exceeds the threshold (ONNX Runtime's algorithm, which
//! the ONNX reference implementation follows). f32 and f16 inputs are computed in f32, f64 in f64, so
//! that ties at the IoU threshold resolve as they do there.

use carve_ir::ops::misc::NonMaxSuppression;

use crate::interp::util::to_f64;
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// The arithmetic NMS is done in (f32 or f64).
trait Real:
    Copy
    + PartialOrd
    + From<f32>
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
}

impl Real for f32 {}
impl Real for f64 {}

fn min_max<T: Real>(a: T, b: T) -> (T, T) {
    if a >= b { (b, a) } else { (a, b) }
}

fn max<T: Real>(a: T, b: T) -> T {
    if a >= b { a } else { b }
}

fn min<T: Real>(a: T, b: T) -> T {
    if a <= b { a } else { b }
}

/// `(x_min, x_max, y_min, y_max)` of a box.
fn extent<T: Real>(b: &[T], center_point_box: bool) -> (T, T, T, T) {
    if center_point_box {
        let two = T::from(2.0);
        let (w, h) = (b[2] / two, b[3] / two);
        (b[0] - w, b[0] + w, b[1] - h, b[1] + h)
    } else {
        let (x0, x1) = min_max(b[1], b[3]);
        let (y0, y1) = min_max(b[0], b[2]);
        (x0, x1, y0, y1)
    }
}

/// Whether box `a` suppresses box `b` (their IoU exceeds `threshold`).
fn suppresses<T: Real>(a: &[T], b: &[T], center_point_box: bool, threshold: T) -> bool {
    let (ax0, ax1, ay0, ay1) = extent(a, center_point_box);
    let (bx0, bx1, by0, by1) = extent(b, center_point_box);
    let ix0 = max(ax0, bx0);
    let ix1 = min(ax1, bx1);
    if ix1 <= ix0 {
        return false;
    }
    let iy0 = max(ay0, by0);
    let iy1 = min(ay1, by1);
    if iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    if inter <= T::from(0.0) {
        return false;
    }
    let area_a = (ax1 - ax0) * (ay1 - ay0);
    let area_b = (bx1 - bx0) * (by1 - by0);
    let union = area_a + area_b - inter;
    if area_a <= T::from(0.0) || area_b <= T::from(0.0) || union <= T::from(0.0) {
        return false;
    }
    inter / union > threshold
}

struct Params {
    batches: usize,
    classes: usize,
    boxes: usize,
    max_per_class: usize,
    center_point_box: bool,
}

fn select<T: Real>(
    p: &Params,
    boxes: &[T],
    scores: &[T],
    iou: T,
    score_threshold: Option<T>,
) -> Vec<i64> {
    let mut out = Vec::new();
    for b in 0..p.batches {
        let batch_boxes = &boxes[b * p.boxes * 4..(b + 1) * p.boxes * 4];
        for c in 0..p.classes {
            let off = (b * p.classes + c) * p.boxes;
            let class_scores = &scores[off..off + p.boxes];
            let mut cand: Vec<usize> = (0..p.boxes)
                .filter(|&i| score_threshold.is_none_or(|t| class_scores[i] > t))
                .collect();
            // Highest score first; equal scores by lower box index (a stable sort keeps index order).
            cand.sort_by(|&i, &j| {
                class_scores[j]
                    .partial_cmp(&class_scores[i])
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let mut selected: Vec<usize> = Vec::new();
            for i in cand {
                if selected.len() >= p.max_per_class {
                    break;
                }
                let bi = &batch_boxes[i * 4..i * 4 + 4];
                let keep = selected.iter().all(|&s| {
                    !suppresses(bi, &batch_boxes[s * 4..s * 4 + 4], p.center_point_box, iou)
                });
                if keep {
                    selected.push(i);
                    out.extend([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    out
}

/// `non_max_suppression`.
pub fn eval(op: &NonMaxSuppression, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let boxes = cx.tensor(0)?;
    let scores = cx.tensor(1)?;
    let ([bb, bs, 4], [sb, classes, ss]) = (&boxes.shape[..], &scores.shape[..]) else {
        return Err(cx.err(format!(
            "boxes must be [B, S, 4] and scores [B, C, S], got {:?} and {:?}",
            boxes.shape, scores.shape
        )));
    };
    if bb != sb || bs != ss {
        return Err(cx.err(format!(
            "boxes {:?} and scores {:?} disagree",
            boxes.shape, scores.shape
        )));
    }
    let scalar = |i: usize| -> Result<Option<f64>, RunError> {
        match cx.opt_tensor(i)? {
            Some(t) if !t.is_empty() => Ok(Some(to_f64(t).map_err(|e| cx.err(e.0))?[0])),
            _ => Ok(None),
        }
    };
    let max_per_class = match cx.opt_tensor(2)? {
        Some(t) if !t.is_empty() => cx.i64s(2)?[0].max(0),
        _ => 0,
    };
    let p = Params {
        batches: *bb,
        classes: *classes,
        boxes: *bs,
        max_per_class: usize::try_from(max_per_class).unwrap_or(usize::MAX),
        center_point_box: op.center_point_box,
    };
    let iou = scalar(3)?.unwrap_or(0.0);
    let score_threshold = scalar(4)?;
    let bx = to_f64(boxes).map_err(|e| cx.err(e.0))?;
    let sc = to_f64(scores).map_err(|e| cx.err(e.0))?;
    let out = if matches!(boxes.data, Data::F64(_)) {
        select(&p, &bx, &sc, iou, score_threshold)
    } else {
        let bx: Vec<f32> = bx.iter().map(|&v| v as f32).collect();
        let sc: Vec<f32> = sc.iter().map(|&v| v as f32).collect();
        select(&p, &bx, &sc, iou as f32, score_threshold.map(|t| t as f32))
    };
    let n = out.len() / 3;
    let t = Tensor::new(vec![n, 3], Data::I64(out)).map_err(|e| cx.err(e.0))?;
    Ok(vec![Value::Tensor(t)])
}
