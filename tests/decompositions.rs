//! The decompositions of `attention` and the losses (carve-passes `decompose`) compute what the
//! interpreter's kernels for those ops compute, over a grid of forms beyond the node suite's: 3-D and
//! 4-D inputs, grouped-query heads, caches, bool / float / short masks, causal and sliding-window
//! masks, `nonpad_kv_seqlen`, soft-capping and every `qk_matmul_output` mode; losses with and without
//! weights, ignored targets and each reduction. Both graphs run through the reference interpreter.

use carve::ir::text;
use carve::passes::decompose::{decompose_attention, decompose_losses};
use carve_runtime::interp::{Value, run};
use carve_runtime::{Data, Tensor};

fn f32s(dims: &[usize], seed: usize) -> Value {
    let n: usize = dims.iter().product();
    let v = (0..n)
        .map(|i| ((i * 7 + seed * 13) as f32 * 0.37).sin() * 1.5)
        .collect();
    Value::Tensor(Tensor::new(dims.to_vec(), Data::F32(v)).expect("tensor"))
}

fn ty(dims: &[usize]) -> String {
    let d: Vec<String> = dims.iter().map(usize::to_string).collect();
    format!("f32[{}]", d.join(","))
}

/// Decomposes `src` with `pass`, checks that `op` is gone and that both graphs give the same outputs
/// on `inputs`.
fn check(
    src: &str,
    pass: fn(
        &mut carve::ir::Graph,
    ) -> Result<carve::passes::decompose::DecomposeStats, carve::passes::PassError>,
    op: &str,
    inputs: Vec<Value>,
) {
    let g = text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let mut d = g.clone();
    let stats = pass(&mut d).unwrap_or_else(|e| panic!("{e}\n{src}"));
    carve::ir::verify::verify(&d).unwrap_or_else(|e| panic!("{e}\n{src}"));
    assert_eq!((stats.decomposed, stats.kept), (1, 0), "{stats:?}\n{src}");
    assert!(d.nodes.iter().all(|n| n.op.name() != op), "{src}");
    let want = run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let got = run(&d, inputs).unwrap_or_else(|e| panic!("{e}\n{}", text::print(&d)));
    assert_eq!(want.len(), got.len());
    for (k, (w, o)) in want.iter().zip(&got).enumerate() {
        let (Some(w), Some(o)) = (w.as_tensor(), o.as_tensor()) else {
            panic!("output {k} is not a tensor");
        };
        assert_eq!(w.shape, o.shape, "output {k}\n{src}");
        let (Data::F32(w), Data::F32(o)) = (&w.data, &o.data) else {
            panic!("output {k} is not f32");
        };
        for (i, (a, b)) in w.iter().zip(o).enumerate() {
            let same = a == b || (a - b).abs() <= 1e-5 + 1e-5 * a.abs();
            assert!(same, "output {k} element {i}: {a} vs {b}\n{src}");
        }
    }
}

#[test]
fn attention_decomposition_matches_the_interpreter() {
    let modes = ["raw", "softcapped", "biased", "probs"];
    let mut n = 0;
    for case in 0..64usize {
        let bit = |k: usize| case >> k & 1 == 1;
        let rank3 = bit(0);
        let (hq, hkv) = if bit(1) { (4, 2) } else { (2, 2) };
        let nonpad = bit(5) && !bit(2);
        let past = if bit(2) { 2 } else { 0 };
        let (b, sq, skv, d, dv) = (2, 3, 4, 4, 2);
        let l = past + skv;
        let causal = bit(3);
        let softcap = bit(4);
        let mask = case % 3; // 0: none, 1: bool (short when there is a cache), 2: float
        let window = case % 5 == 1;
        let mode = modes[case / 3 % 4];
        let (qs, ks, vs) = if rank3 {
            (
                vec![b, sq, hq * d],
                vec![b, skv, hkv * d],
                vec![b, skv, hkv * dv],
            )
        } else {
            (
                vec![b, hq, sq, d],
                vec![b, hkv, skv, d],
                vec![b, hkv, skv, dv],
            )
        };
        let y = if rank3 {
            vec![b, sq, hq * dv]
        } else {
            vec![b, hq, sq, dv]
        };
        let mut params = vec![
            format!("%q: {}", ty(&qs)),
            format!("%k: {}", ty(&ks)),
            format!("%v: {}", ty(&vs)),
        ];
        let mut inputs = vec![f32s(&qs, case), f32s(&ks, case + 1), f32s(&vs, case + 2)];
        let mut args = vec!["%q", "%k", "%v"];
        let mask_cols = if past > 0 { l - 1 } else { l };
        match mask {
            1 => {
                params.push(format!("%m: bool[{sq},{mask_cols}]"));
                let m: Vec<bool> = (0..sq * mask_cols).map(|i| (i + case) % 4 != 1).collect();
                inputs.push(Value::Tensor(
                    Tensor::new(vec![sq, mask_cols], Data::Bool(m)).expect("tensor"),
                ));
                args.push("%m");
            }
            2 => {
                params.push(format!("%m: {}", ty(&[1, hq, sq, l])));
                inputs.push(f32s(&[1, hq, sq, l], case + 3));
                args.push("%m");
            }
            _ => args.push("_"),
        }
        if past > 0 {
            params.push(format!("%pk: {}", ty(&[b, hkv, past, d])));
            params.push(format!("%pv: {}", ty(&[b, hkv, past, dv])));
            inputs.push(f32s(&[b, hkv, past, d], case + 4));
            inputs.push(f32s(&[b, hkv, past, dv], case + 5));
            args.extend(["%pk", "%pv"]);
        } else {
            args.extend(["_", "_"]);
        }
        if nonpad {
            params.push(format!("%n: i64[{b}]"));
            inputs.push(Value::Tensor(
                Tensor::new(vec![b], Data::I64(vec![3, l as i64])).expect("tensor"),
            ));
            args.push("%n");
        }
        while args.last() == Some(&"_") {
            args.pop();
        }
        let mut attrs = vec![format!("qk_output={mode}")];
        if rank3 {
            attrs.push(format!("q_num_heads={hq}, kv_num_heads={hkv}"));
        }
        if causal {
            attrs.push("is_causal=true".into());
        }
        if softcap {
            attrs.push("softcap=1.5".into());
        }
        if window {
            attrs.push("left_window=1, right_window=0".into());
        }
        if case % 7 == 2 {
            attrs.push("scale=0.3".into());
        }
        let outs = [
            ty(&y),
            ty(&[b, hkv, l, d]),
            ty(&[b, hkv, l, dv]),
            ty(&[b, hq, sq, l]),
        ];
        let src = format!(
            "graph @attn({}) -> ({}) {{\n  %0, %1, %2, %3 = attention({}) {{{}}} : {}\n  return %0, %1, %2, %3\n}}\n",
            params.join(", "),
            outs.join(", "),
            args.join(", "),
            attrs.join(", "),
            outs.join(", "),
        );
        check(&src, decompose_attention, "attention", inputs);
        n += 1;
    }
    assert_eq!(n, 64);
}

#[test]
fn loss_decompositions_match_the_interpreter() {
    for case in 0..24usize {
        let sce = case % 2 == 1;
        let weighted = case / 2 % 2 == 1;
        let ignore = case / 4 % 2 == 1;
        let reduction = ["none", "sum", "mean"][case / 8];
        let (nb, c, d) = (3, 4, 2);
        let x = [nb, c, d];
        let t: Vec<i64> = (0..nb * d).map(|i| ((i * 5 + case) % c) as i64).collect();
        let out = if reduction == "none" {
            ty(&[nb, d])
        } else {
            "f32[]".into()
        };
        let mut params = vec![format!("%x: {}", ty(&x)), format!("%t: i64[{nb},{d}]")];
        let mut inputs = vec![
            f32s(&x, case),
            Value::Tensor(Tensor::new(vec![nb, d], Data::I64(t)).expect("tensor")),
        ];
        let mut args = vec!["%x", "%t"];
        if weighted {
            params.push(format!("%w: {}", ty(&[c])));
            inputs.push(f32s(&[c], case + 1));
            args.push("%w");
        }
        let mut attrs = vec![format!("reduction={reduction}")];
        if ignore {
            attrs.push("ignore_index=2".into());
        }
        let (op, results, outs) = if sce {
            let both = format!("{out}, {}", ty(&x));
            ("softmax_cross_entropy_loss", "%0, %1", both)
        } else {
            ("nll_loss", "%0", out)
        };
        let src = format!(
            "graph @loss({}) -> ({outs}) {{\n  {results} = {op}({}) {{{}}} : {outs}\n  return {results}\n}}\n",
            params.join(", "),
            args.join(", "),
            attrs.join(", "),
        );
        check(&src, decompose_losses, op, inputs);
    }
}
