//! The sliding-window arithmetic every windowed op shares (convolutions, pooling, and the
//! interpreter's and codegen's kernels for them): one axis's [`Window`], the op's [`WindowAttrs`] lists,
//! and output length and applied padding for forward ([`window_output`], [`forward_axes`]) and
//! transposed ([`transposed_output`]) windows, and symbolic output dims ([`spatial_output_dims`]).

use super::*;

// ---------------------------------------------------------------------------------------------------
// Sliding-window arithmetic
// ---------------------------------------------------------------------------------------------------

/// Sliding-window geometry along one spatial axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel size (≥ 1).
    pub kernel: u64,
    /// Stride (≥ 1).
    pub stride: u64,
    /// Dilation (≥ 1).
    pub dilation: u64,
    /// Explicit padding before the first element (used with [`AutoPad::NotSet`]).
    pub pad_begin: u64,
    /// Explicit padding after the last element (used with [`AutoPad::NotSet`]).
    pub pad_end: u64,
}

impl Window {
    /// A window of `kernel` with stride and dilation 1 and no padding.
    pub fn new(kernel: u64) -> Window {
        Window {
            kernel,
            stride: 1,
            dilation: 1,
            pad_begin: 0,
            pad_end: 0,
        }
    }

    /// The extent the dilated kernel covers: `(kernel - 1) · dilation + 1`.
    pub fn extent(&self) -> Result<u64, String> {
        self.check()?;
        (self.kernel - 1)
            .checked_mul(self.dilation)
            .and_then(|e| e.checked_add(1))
            .ok_or_else(|| "dilated kernel extent overflows".to_string())
    }

    fn check(&self) -> Result<(), String> {
        if self.kernel == 0 {
            return Err("kernel size must be positive".into());
        }
        if self.stride == 0 {
            return Err("stride must be positive".into());
        }
        if self.dilation == 0 {
            return Err("dilation must be positive".into());
        }
        Ok(())
    }
}

fn same_split(total: u64, auto_pad: AutoPad) -> (u64, u64) {
    let half = total / 2;
    match auto_pad {
        AutoPad::SameLower => (total - half, half),
        _ => (half, total - half),
    }
}

/// Output length and applied `(pad_begin, pad_end)` of a conv/pool window along an axis of length
/// `input`.
///
/// `same_*` gives `ceil(input / stride)` with padding `max(0, (out-1)·stride + extent - input)` split
/// with the odd element at the end (`same_upper`) or beginning (`same_lower`); `valid` pads nothing;
/// `notset` uses the window's pads. Otherwise `out = floor((input + pads - extent) / stride) + 1`, or with
/// `ceil_mode` the ceiling, minus one if the last window would start in the end padding.
pub fn window_output(
    input: u64,
    w: &Window,
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Result<(u64, u64, u64), String> {
    let extent = w.extent()?;
    let s = w.stride;
    let (pb, pe) = match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = input.div_ceil(s);
            let covered = out
                .saturating_sub(1)
                .checked_mul(s)
                .and_then(|c| c.checked_add(extent))
                .ok_or("window arithmetic overflows")?;
            let (pb, pe) = same_split(covered.saturating_sub(input), auto_pad);
            return Ok((out, pb, pe));
        }
        AutoPad::Valid => (0, 0),
        AutoPad::NotSet => (w.pad_begin, w.pad_end),
    };
    let padded = input
        .checked_add(pb)
        .and_then(|x| x.checked_add(pe))
        .ok_or("padded input size overflows")?;
    let span = padded.checked_sub(extent).ok_or_else(|| {
        format!("the kernel extent {extent} exceeds the padded input size {padded}")
    })?;
    let mut out = if ceil_mode {
        span.div_ceil(s) + 1
    } else {
        span / s + 1
    };
    // The last window must start inside the input or the begin padding.
    if ceil_mode && (out - 1).checked_mul(s).is_none_or(|st| st >= input + pb) {
        out -= 1;
    }
    Ok((out, pb, pe))
}

/// Output length and `(pad_begin, pad_end)` of a transposed conv along an axis of length `input`.
///
/// With `output_size` given (ONNX `output_shape`), or with `same_*` (`output = input · stride`), the
/// total padding is `stride·(input-1) + output_padding + extent - output`, split as for [`window_output`]
/// (it can be negative when the requested output is larger). Otherwise
/// `output = stride·(input-1) + output_padding + extent - pad_begin - pad_end`.
pub fn transposed_output(
    input: u64,
    w: &Window,
    output_padding: u64,
    auto_pad: AutoPad,
    output_size: Option<u64>,
) -> Result<(u64, i64, i64), String> {
    let extent = i128::from(w.extent()?);
    let overflow = || "transposed conv arithmetic overflows".to_string();
    let full = i128::from(w.stride)
        .checked_mul(i128::from(input) - 1)
        .and_then(|x| x.checked_add(i128::from(output_padding)))
        .and_then(|x| x.checked_add(extent))
        .ok_or_else(overflow)?;
    let target = match (output_size, auto_pad) {
        (Some(o), _) => Some(i128::from(o)),
        (None, AutoPad::SameUpper | AutoPad::SameLower) => Some(
            i128::from(input)
                .checked_mul(i128::from(w.stride))
                .ok_or_else(overflow)?,
        ),
        _ => None,
    };
    let to_u64 = |x: i128| {
        u64::try_from(x).map_err(|_| format!("transposed conv output size {x} is out of range"))
    };
    let to_i64 = |x: i128| i64::try_from(x).map_err(|_| "padding overflows".to_string());
    match target {
        Some(out) => {
            let total = full - out;
            let half = total.div_euclid(2);
            let (pb, pe) = if auto_pad == AutoPad::SameUpper {
                (half, total - half)
            } else {
                (total - half, half)
            };
            Ok((to_u64(out)?, to_i64(pb)?, to_i64(pe)?))
        }
        None => {
            let (pb, pe) = match auto_pad {
                AutoPad::Valid => (0, 0),
                _ => (w.pad_begin, w.pad_end),
            };
            let out = full - i128::from(pb) - i128::from(pe);
            if out < 0 || input == 0 {
                return Err(format!(
                    "transposed conv output size {out} is not positive (input {input}, pads {pb}+{pe})"
                ));
            }
            Ok((to_u64(out)?, pb as i64, pe as i64))
        }
    }
}

/// Per-axis attributes of a sliding-window op as ONNX lists (empty = default), validated.
#[derive(Debug, Clone, Copy)]
pub struct WindowAttrs<'a> {
    /// Strides (empty: all 1).
    pub strides: &'a [i64],
    /// Dilations (empty: all 1).
    pub dilations: &'a [i64],
    /// `[begins.., ends..]` (empty: all 0).
    pub pads: &'a [i64],
    /// Automatic padding.
    pub auto_pad: AutoPad,
    /// Ceil mode (pooling).
    pub ceil_mode: bool,
}

impl WindowAttrs<'_> {
    /// Checks list lengths against `n` spatial axes and value ranges.
    pub fn check(&self, n: usize) -> Result<(), String> {
        check_list("strides", self.strides, n, 1)?;
        check_list("dilations", self.dilations, n, 1)?;
        if !self.pads.is_empty() && self.pads.len() != 2 * n {
            return Err(format!(
                "pads has {} values, expected {} (begin and end for {n} spatial axes)",
                self.pads.len(),
                2 * n
            ));
        }
        if let Some(p) = self.pads.iter().find(|&&p| p < 0) {
            return Err(format!("pads must not be negative, got {p}"));
        }
        Ok(())
    }

    /// The window along axis `i` for kernel size `kernel` (assumes [`WindowAttrs::check`] passed).
    pub fn window(&self, i: usize, kernel: u64) -> Window {
        let n = self.pads.len() / 2;
        let get = |v: &[i64], d: i64| v.get(i).copied().unwrap_or(d) as u64;
        Window {
            kernel,
            stride: get(self.strides, 1),
            dilation: get(self.dilations, 1),
            pad_begin: if n > 0 { self.pads[i] as u64 } else { 0 },
            pad_end: if n > 0 { self.pads[n + i] as u64 } else { 0 },
        }
    }
}

/// The window attributes of a sliding-window op from its attribute lists (the one constructor that
/// shape inference, the interpreter and codegen share).
pub fn window_attrs<'a>(
    strides: &'a [i64],
    dilations: &'a [i64],
    pads: &'a [i64],
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> WindowAttrs<'a> {
    WindowAttrs {
        strides,
        dilations,
        pads,
        auto_pad,
        ceil_mode,
    }
}

pub(super) fn check_list(name: &str, v: &[i64], n: usize, min: i64) -> Result<(), String> {
    if !v.is_empty() && v.len() != n {
        return Err(format!(
            "{name} has {} values, expected {n} (one per spatial axis)",
            v.len()
        ));
    }
    if let Some(x) = v.iter().find(|&&x| x < min) {
        return Err(format!("{name} values must be at least {min}, got {x}"));
    }
    Ok(())
}

/// Output spatial dims of a conv/pool over `input` spatial dims with `kernel` sizes (`None` = unknown).
///
/// Symbolic dims flow through where the window is size-preserving (stride 1 with `same_*` padding or
/// padding equal to `extent - 1`); other symbolic or unknown inputs give [`Dim::Unknown`]. With `same_*`
/// the output size does not depend on the kernel.
pub fn spatial_output_dims(
    input: &[Dim],
    kernel: &[Option<u64>],
    attrs: &WindowAttrs,
) -> Result<Vec<Dim>, String> {
    let n = input.len();
    attrs.check(n)?;
    if kernel.len() != n {
        return Err(format!(
            "kernel has {} spatial dims, the input {n}",
            kernel.len()
        ));
    }
    let same = matches!(attrs.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    let mut out = Vec::with_capacity(n);
    for (i, (d, k)) in input.iter().zip(kernel).enumerate() {
        let w = attrs.window(i, k.unwrap_or(1));
        let dim = match (d, k) {
            (Dim::Known(x), Some(_)) => {
                Dim::Known(window_output(*x, &w, attrs.auto_pad, attrs.ceil_mode)?.0)
            }
            (Dim::Known(x), None) if same => Dim::Known(x.div_ceil(w.stride.max(1))),
            (Dim::Sym(_), _) if same && w.stride == 1 => d.clone(),
            (Dim::Sym(_), Some(_)) if w.stride == 1 => {
                let extent = w.extent()?;
                let pads = match attrs.auto_pad {
                    AutoPad::Valid => 0,
                    _ => w.pad_begin.saturating_add(w.pad_end),
                };
                if pads.checked_add(1) == Some(extent) {
                    d.clone()
                } else {
                    Dim::Unknown
                }
            }
            _ => Dim::Unknown,
        };
        out.push(dim);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
