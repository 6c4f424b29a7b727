//! com.microsoft MatMulNBits against ONNX Runtime: the `matmul_nbits_*` cases of `tests/data/contrib`
//! (4-bit with packed, float and default zero points, with bias, `k` not a multiple of the block,
//! blocks of 16/32/128, batch dims, 2 and 8 bits, and a model-sized K = N = 384 case; weights packed
//! by ONNX Runtime's own quantizer, outputs from ONNX Runtime) must match through the interpreter and
//! through native code with no interpreter fallback; and carve's packer
//! (`carve_ir::ops::quant::blockwise::quantize`) must write exactly the bytes and scales ONNX Runtime's
//! packer wrote for the same float weights (`tests/data/contrib/nbits_quantizer/*.npz`, from the same
//! script, `make_contrib_cases.py`).

use std::path::{Path, PathBuf};

use carve::compare::NODE_SUITE;
use carve::conformance::{Engine, Outcome, run_case_with};
use carve::ir::ops::quant::blockwise::{NBitsLayout, dequantize, quantize};
use carve::npy::read_npz;
use carve::runtime::{Data, Tensor};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/contrib")
}

fn nbits_cases() -> Vec<PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(data())
        .expect("tests/data/contrib is committed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.join("model.onnx").is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("matmul_nbits"))
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn matmul_nbits_matches_onnx_runtime_in_the_interpreter_and_natively() {
    let dirs = nbits_cases();
    assert!(
        dirs.len() >= 7,
        "expected the generated cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        for engine in [Engine::Interpreter, Engine::Jit { threads: 2 }] {
            let r = run_case_with(d, NODE_SUITE, engine);
            let pass = matches!(r.outcome, Outcome::Pass { .. });
            let native = matches!(engine, Engine::Interpreter) || r.native_pass();
            if !pass || !native {
                failures.push(format!(
                    "{} ({engine:?}): {} {} (native: {})",
                    r.name,
                    r.outcome.label(),
                    r.outcome.detail(),
                    r.native_pass()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn f32s(t: &Tensor) -> Vec<f32> {
    match &t.data {
        Data::F32(v) => v.clone(),
        other => panic!("expected f32, got {:?}", other.dtype()),
    }
}

fn u8s(t: &Tensor) -> Vec<u8> {
    match &t.data {
        Data::U8(v) => v.clone(),
        other => panic!("expected u8, got {:?}", other.dtype()),
    }
}

#[test]
fn the_packer_writes_what_onnx_runtime_writes() {
    let dir = data().join("nbits_quantizer");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("nbits_quantizer is committed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "found {}", files.len());
    for f in files {
        let arrays = read_npz(&f).unwrap();
        let get = |name: &str| arrays.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let (w, b) = (get("w").unwrap(), get("b").unwrap());
        let (k, n) = (w.shape[0], w.shape[1]);
        let int = |name: &str| match get(name).map(|t| &t.data) {
            Some(Data::I64(v)) => v[0] as usize,
            other => panic!("{name}: {other:?}"),
        };
        let (bits, bs, blocks) = (int("bits"), int("block_size"), b.shape[1]);
        let layout = NBitsLayout::new(k, n, bits, bs).unwrap();
        assert_eq!(layout.blocks(), blocks, "{}", f.display());
        let zp = get("zero_points").map(u8s);
        let p = quantize(&f32s(w), layout, zp.is_none()).unwrap();
        let name = f.display();
        assert_eq!(p.b, u8s(b), "{name}: packed codes");
        assert_eq!(p.scales, f32s(get("scales").unwrap()), "{name}: scales");
        assert_eq!(p.zero_points, zp, "{name}: zero points");
        // And its inverse is within half a step of the weights (a step where clamped, see `quantize`).
        let d = dequantize(&p).unwrap();
        for (i, (&x, &y)) in d.iter().zip(&f32s(w)).enumerate() {
            let s = p.scales[(i % n) * blocks + (i / n) / bs].abs();
            assert!(
                (x - y).abs() <= s * 1.00001,
                "{name}: element {i}: {x} vs {y}"
            );
        }
    }
}
