//! Type rule of `matmul_nbits` (com.microsoft MatMulNBits: low-bit packed weights).

use super::{MatMulNBits, check_dtype, inputs_between};
use crate::infer::{Infer, InferCtx, InferError};
use crate::{DType, Dim, Shape, TensorType, Type};

impl Infer for MatMulNBits {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 3, 6)?;
        if !(1..=8).contains(&self.bits) {
            return Err(cx.err(format!("bits must be 1 to 8, got {}", self.bits)));
        }
        if self.k < 1 || self.n < 1 {
            return Err(cx.err(format!(
                "k and n must be positive, got k={} n={}",
                self.k, self.n
            )));
        }
        if self.block_size < 1
            || self
                .block_size
                .checked_mul(self.bits)
                .is_none_or(|b| b % 8 != 0)
        {
            return Err(cx.err(format!(
                "block_size must be positive with block_size·bits a whole number of bytes, got {}",
                self.block_size
            )));
        }
        let a = cx.tensor(0)?;
        check_dtype(cx, 0, "a", DType::is_float, "a floating-point type")?;
        check_dtype(cx, 1, "b", |d| d == DType::U8, "u8")?;
        check_dtype(
            cx,
            2,
            "scales",
            |d| d == a.dtype,
            &format!("{} like a", a.dtype),
        )?;
        let (k, n) = (self.k as u64, self.n as u64);
        let blocks = k.div_ceil(self.block_size as u64);
        let elems = |t: &TensorType| -> Option<u64> {
            t.dims()?
                .iter()
                .map(|d| match d {
                    Dim::Known(v) => Some(*v),
                    _ => None,
                })
                .product()
        };
        if let Some(e) = elems(cx.tensor(2)?).filter(|&e| e != n * blocks) {
            return Err(cx.err(format!(
                "scales (input 2) must have n·blocks = {} elements, got {e}",
                n * blocks
            )));
        }
        if let Some(z) = cx.opt_tensor(3)? {
            let want = if z.dtype == DType::U8 {
                n * (blocks * self.bits as u64).div_ceil(8)
            } else if z.dtype == a.dtype {
                n * blocks
            } else {
                return Err(cx.err(format!(
                    "zero_points (input 3) has element type {}, expected packed u8 or {} like the scales",
                    z.dtype, a.dtype
                )));
            };
            if let Some(e) = elems(z).filter(|&e| e != want) {
                return Err(cx.err(format!(
                    "zero_points (input 3) must have {want} elements, got {e}"
                )));
            }
        }
        if let Some(g) = cx.opt_tensor(4)?
            && !matches!(g.dtype, DType::I32 | DType::I64)
        {
            return Err(cx.err(format!(
                "g_idx (input 4) has element type {}, expected i32",
                g.dtype
            )));
        }
        if let Some(b) = cx.opt_tensor(5)?
            && (b.dtype != a.dtype || elems(b).is_some_and(|e| e != n))
        {
            return Err(cx.err(format!("bias (input 5) must be {}[{n}], got {b}", a.dtype)));
        }
        let shape = match a.dims() {
            Some([]) => return Err(cx.err("a must have rank >= 1, got a scalar")),
            Some(ad) => {
                let last = &ad[ad.len() - 1];
                if last.conflicts(&Dim::Known(k)) {
                    return Err(cx.err(format!("a's last dim is {last}, expected k={k}")));
                }
                let mut d = ad.to_vec();
                let l = d.len() - 1;
                d[l] = Dim::Known(n);
                Some(Shape(d))
            }
            None => None,
        };
        Ok(vec![Type::Tensor(TensorType {
            dtype: a.dtype,
            shape,
            quant: None,
        })])
    }
}
