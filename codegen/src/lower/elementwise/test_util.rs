//! Test data shared by the elementwise kernels' unit tests.

use carve_ir::DType;
use carve_runtime::{Data, Tensor};

use crate::testing::random_f32;

/// A tensor of `shape` holding `data`.
pub(super) fn tensor(shape: &[usize], data: Data) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// Integers of `dtype` (u8, i8, u16, i16 or i32) spread over its whole range.
pub(super) fn ints(dtype: DType, shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let f = random_f32(n, seed, 0.0, 1.0);
    let data = match dtype {
        DType::U8 => Data::U8(f.iter().map(|&x| (x * 255.99) as u8).collect()),
        DType::I8 => Data::I8(f.iter().map(|&x| (x * 255.99 - 128.0) as i8).collect()),
        DType::U16 => Data::U16(f.iter().map(|&x| (x * 65535.99) as u16).collect()),
        DType::I16 => Data::I16(f.iter().map(|&x| (x * 65535.99 - 32768.0) as i16).collect()),
        DType::I32 => Data::I32(f.iter().map(|&x| ((x - 0.5) * 4e9) as i32).collect()),
        _ => unreachable!("not a quantized type: {dtype}"),
    };
    tensor(shape, data)
}
