//! Differential tests of the native LSTM: random sizes, directions, layouts and optional inputs agree
//! with the interpreter within 1e-5.

use carve_codegen::testing::{Operand, check_node, random_tensor};
use carve_ir::ops::rnn::{Direction, Lstm};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    s: usize,
    b: usize,
    i: usize,
    h: usize,
    dir: u8,
    batch_first: bool,
    bias: bool,
    init: u8,
    peep: bool,
    clip: bool,
    input_forget: bool,
    n_out: usize,
    /// sequence_lens: 0 absent, 1 constant, 2 runtime input.
    lens: u8,
    seed: u64,
}

fn run(c: &Case) -> Result<(), String> {
    let nd = if c.dir == 2 { 2 } else { 1 };
    let g = 4 * c.h;
    let x = if c.batch_first {
        random_tensor(&[c.b, c.s, c.i], c.seed, -2.0, 2.0)
    } else {
        random_tensor(&[c.s, c.b, c.i], c.seed, -2.0, 2.0)
    };
    let w = random_tensor(&[nd, g, c.i], c.seed ^ 1, -0.6, 0.6);
    let r = random_tensor(&[nd, g, c.h], c.seed ^ 2, -0.6, 0.6);
    let state = if c.batch_first {
        vec![c.b, nd, c.h]
    } else {
        vec![nd, c.b, c.h]
    };
    let opt = |on: bool, t| {
        if on {
            Operand::Const(t)
        } else {
            Operand::Absent
        }
    };
    let mut ops = vec![
        Operand::Input(x),
        Operand::Const(w),
        Operand::Const(r),
        opt(c.bias, random_tensor(&[nd, 2 * g], c.seed ^ 3, -0.5, 0.5)),
    ];
    let lens = carve_runtime::Tensor {
        shape: vec![c.b],
        data: carve_runtime::Data::I32(
            (0..c.b)
                .map(|k| ((c.seed >> (k * 3)) % (c.s as u64 + 1)) as i32)
                .collect(),
        ),
    };
    ops.push(match c.lens {
        0 => Operand::Absent,
        1 => Operand::Const(lens),
        _ => Operand::Input(lens),
    });
    // init: 0 none, 1 runtime h0 only, 2 runtime h0 and c0, 3 constant h0 and c0.
    let h0 = random_tensor(&state, c.seed ^ 4, -1.0, 1.0);
    let c0 = random_tensor(&state, c.seed ^ 5, -1.0, 1.0);
    match c.init {
        0 => ops.extend([Operand::Absent, Operand::Absent]),
        1 => ops.extend([Operand::Input(h0), Operand::Absent]),
        2 => ops.extend([Operand::Input(h0), Operand::Input(c0)]),
        _ => ops.extend([Operand::Const(h0), Operand::Const(c0)]),
    }
    ops.push(opt(
        c.peep,
        random_tensor(&[nd, 3 * c.h], c.seed ^ 6, -0.5, 0.5),
    ));
    let op = Lstm {
        hidden_size: Some(c.h as i64),
        direction: [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ][c.dir as usize],
        clip: c.clip.then_some(1.5),
        batch_first: c.batch_first,
        input_forget: c.input_forget,
        ..Lstm::default()
    };
    check_node(op.into(), &ops, c.n_out, 1e-5, 1e-5).map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn lstm_matches(s in 1usize..6, b in 1usize..4, i in 1usize..20, h in 1usize..21, dir in 0u8..3,
                    batch_first in any::<bool>(), bias in any::<bool>(), init in 0u8..4, peep in any::<bool>(),
                    clip in any::<bool>(), input_forget in any::<bool>(), n_out in 1usize..4, lens in 0u8..3, seed in any::<u64>()) {
        let c = Case { s, b, i, h, dir, batch_first, bias, init, peep, clip, input_forget, n_out, lens, seed };
        run(&c).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn silero_sized_lstm_matches() {
    let c = Case {
        s: 1,
        b: 1,
        i: 128,
        h: 128,
        dir: 0,
        batch_first: false,
        bias: true,
        init: 2,
        peep: false,
        clip: false,
        input_forget: false,
        n_out: 3,
        lens: 0,
        seed: 42,
    };
    run(&c).unwrap();
}

#[test]
fn big_bidirectional_lstm_is_tiled_and_matches() {
    let c = Case {
        s: 20,
        b: 3,
        i: 64,
        h: 64,
        dir: 2,
        batch_first: false,
        bias: true,
        init: 2,
        peep: true,
        clip: false,
        input_forget: false,
        n_out: 3,
        lens: 2,
        seed: 7,
    };
    run(&c).unwrap();
}
