//! `tfidf_vectorizer`: counts the pool's n-grams (with skips) in each row and weights the counts. The pool
//! is loaded into a trie exactly as ONNX Runtime and the ONNX reference do (n-gram ids in pool order,
//! only sizes within `[min_gram_length, max_gram_length]` registered), and rows are scanned the same way:
//! unigrams once, longer n-grams once per skip distance `1..=max_skip_count+1`.

use std::collections::HashMap;
use std::hash::Hash;

use carve_ir::ops::misc::{TfIdfMode, TfIdfVectorizer};

use crate::interp::util::{checked_numel, to_i64};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// A trie node: the id of the n-gram ending here (0 = none) and its continuations.
struct Node<K> {
    id: usize,
    leaves: HashMap<K, Node<K>>,
}

impl<K: Eq + Hash + Clone> Node<K> {
    fn new() -> Node<K> {
        Node {
            id: 0,
            leaves: HashMap::new(),
        }
    }
}

/// Registers `count` n-grams of `size` items starting at `pool[start]`, with ids from `next_id`.
fn populate<K: Eq + Hash + Clone>(
    root: &mut Node<K>,
    pool: &[K],
    mut start: usize,
    count: usize,
    size: usize,
    mut next_id: usize,
) -> usize {
    for _ in 0..count {
        let mut node = &mut *root;
        let mut n = 1;
        while start < pool.len() {
            let p = node
                .leaves
                .entry(pool[start].clone())
                .or_insert_with(Node::new);
            start += 1;
            if n == size {
                p.id = next_id;
                next_id += 1;
                break;
            }
            node = p;
            n += 1;
        }
    }
    next_id
}

fn build<K: Eq + Hash + Clone>(op: &TfIdfVectorizer, pool: &[K]) -> Result<Node<K>, String> {
    let mut root = Node::new();
    let mut next_id = 1;
    for (i, &start) in op.ngram_counts.iter().enumerate() {
        let size = i + 1;
        let end = op
            .ngram_counts
            .get(i + 1)
            .copied()
            .unwrap_or(pool.len() as i64);
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
            return Err(format!(
                "ngram_counts {:?} has a negative entry",
                op.ngram_counts
            ));
        };
        if end > pool.len() || start > end {
            return Err(format!(
                "ngram_counts {:?} does not fit a pool of {}",
                op.ngram_counts,
                pool.len()
            ));
        }
        let count = (end - start) / size;
        if count == 0 {
            continue;
        }
        if (op.min_gram_length..=op.max_gram_length).contains(&(size as i64)) {
            next_id = populate(&mut root, pool, start, count, size, next_id);
        } else {
            next_id += count;
        }
    }
    Ok(root)
}

/// Adds the n-gram counts of `row` into `freq` (one row of the output).
fn count_row<K: Eq + Hash + Clone>(
    op: &TfIdfVectorizer,
    root: &Node<K>,
    row: &[K],
    freq: &mut [i64],
) -> Result<(), String> {
    let c = row.len();
    let max_gram = usize::try_from(op.max_gram_length).unwrap_or(0);
    let mut start_size = usize::try_from(op.min_gram_length).unwrap_or(1).max(1);
    // Skip distances beyond the row length find nothing more.
    let max_skip = usize::try_from(op.max_skip_count)
        .unwrap_or(0)
        .saturating_add(1)
        .min(c.max(1));
    for skip in 1..=max_skip {
        for begin in 0..c {
            if begin.saturating_add(skip.saturating_mul(start_size - 1)) >= c {
                break;
            }
            let mut node = root;
            let mut size = 1;
            let mut item = begin;
            while !node.leaves.is_empty() && size <= max_gram && item < c {
                let Some(hit) = node.leaves.get(&row[item]) else {
                    break;
                };
                if size >= start_size && hit.id != 0 {
                    let slot = op
                        .ngram_indexes
                        .get(hit.id - 1)
                        .and_then(|&k| usize::try_from(k).ok())
                        .filter(|&k| k < freq.len())
                        .ok_or_else(|| {
                            format!("n-gram {} has no valid ngram_indexes entry", hit.id)
                        })?;
                    freq[slot] += 1;
                }
                node = hit;
                size += 1;
                item += skip;
            }
        }
        // Unigrams are counted once: they do not depend on the skip distance.
        if start_size == 1 {
            start_size = 2;
            if start_size > max_gram {
                break;
            }
        }
    }
    Ok(())
}

fn count_all<K: Eq + Hash + Clone>(
    op: &TfIdfVectorizer,
    pool: &[K],
    x: &[K],
    rows: usize,
    width: usize,
) -> Result<Vec<i64>, String> {
    let root = build(op, pool)?;
    let mut freq = vec![0i64; rows * width];
    let c = x.len().checked_div(rows).unwrap_or(0);
    if c > 0 {
        for (r, row) in x.chunks(c).enumerate().take(rows) {
            count_row(op, &root, row, &mut freq[r * width..(r + 1) * width])?;
        }
    }
    Ok(freq)
}

/// `tfidf_vectorizer`.
pub fn eval(op: &TfIdfVectorizer, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let (rows, out_shape_rows) = match x.shape[..] {
        [_] => (1, None),
        [b, _] => (b, Some(b)),
        _ => {
            return Err(cx.err(format!(
                "input must be [C] or [N, C], got shape {:?}",
                x.shape
            )));
        }
    };
    let width = match op.ngram_indexes.iter().max() {
        Some(&m) => usize::try_from(m)
            .ok()
            .and_then(|m| m.checked_add(1))
            .ok_or_else(|| cx.err("ngram_indexes must be >= 0"))?,
        None => 0,
    };
    let shape = match out_shape_rows {
        Some(b) => vec![b, width],
        None => vec![width],
    };
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    let freq = match &x.data {
        Data::Str(s) => count_all(op, &op.pool_strings, s, rows, width),
        _ => {
            let v = to_i64(x).map_err(|e| cx.err(e.0))?;
            count_all(op, &op.pool_int64s, &v, rows, width)
        }
    }
    .map_err(|e| cx.err(e))?;
    let w = &op.weights;
    if !w.is_empty() && w.len() < width && matches!(op.mode, TfIdfMode::Idf | TfIdfMode::TfIdf) {
        return Err(cx.err(format!("{} weights for {width} output columns", w.len())));
    }
    let y: Vec<f32> = freq
        .iter()
        .enumerate()
        .map(|(p, &f)| {
            let i = p % width.max(1);
            match op.mode {
                TfIdfMode::Tf => f as f32,
                TfIdfMode::Idf if w.is_empty() => f32::from(u8::from(f > 0)),
                TfIdfMode::Idf => {
                    if f > 0 {
                        w[i]
                    } else {
                        0.0
                    }
                }
                TfIdfMode::TfIdf if w.is_empty() => f as f32,
                TfIdfMode::TfIdf => w[i] * f as f32,
            }
        })
        .collect();
    let t = Tensor::new(shape, Data::F32(y)).map_err(|e| cx.err(e.0))?;
    Ok(vec![Value::Tensor(t)])
}
