//! Tensor statistics gathered by calibration (the driver runs the model and feeds these) and the
//! calibrators that turn them into a clipping range: min/max, percentile, minimum quantization error
//! (MSE) and minimum KL divergence (entropy).

use std::fmt;
use std::str::FromStr;

/// Bins of every calibration histogram.
pub const HIST_BINS: usize = 2048;

/// What calibration saw of one tensor over all samples.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// Smallest value seen (finite values only).
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    /// Number of finite values seen.
    pub count: u64,
    /// Values seen, binned over `[min, max]` (a second pass over the data; `None` for min/max only).
    pub hist: Option<Histogram>,
}

impl TensorStats {
    /// Statistics of no values yet.
    pub fn new() -> TensorStats {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            hist: None,
        }
    }

    /// Widens min/max by `xs` (non-finite values are ignored).
    pub fn observe(&mut self, xs: &[f32]) {
        for &x in xs.iter().filter(|x| x.is_finite()) {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            self.count += 1;
        }
    }
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats::new()
    }
}

/// A histogram of values over a fixed range `[lo, hi]` in [`HIST_BINS`] equal bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub lo: f32,
    /// Upper edge of the last bin.
    pub hi: f32,
    /// Counts per bin.
    pub bins: Vec<u64>,
}

impl Histogram {
    /// An empty histogram over `[lo, hi]` (widened to include 0, which every quantized range must).
    pub fn new(lo: f32, hi: f32) -> Histogram {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        Histogram {
            lo,
            hi: if hi > lo { hi } else { lo + 1.0 },
            bins: vec![0; HIST_BINS],
        }
    }

    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        (f64::from(self.hi) - f64::from(self.lo)) / self.bins.len() as f64
    }

    /// Adds finite values of `xs` (values outside the range go to the end bins).
    pub fn add(&mut self, xs: &[f32]) {
        let (lo, w, last) = (f64::from(self.lo), self.bin_width(), self.bins.len() - 1);
        for &x in xs.iter().filter(|x| x.is_finite()) {
            let b = ((f64::from(x) - lo) / w).floor();
            let b = if b <= 0.0 { 0 } else { (b as usize).min(last) };
            self.bins[b] += 1;
        }
    }

    /// Centre of bin `i`.
    fn centre(&self, i: usize) -> f64 {
        f64::from(self.lo) + (i as f64 + 0.5) * self.bin_width()
    }

    /// The value below which a fraction `q` of the counted values lies (bin edges interpolated).
    pub fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.bins.iter().sum();
        if total == 0 {
            return f64::from(self.lo);
        }
        let target = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0.0;
        for (i, &c) in self.bins.iter().enumerate() {
            let next = seen + c as f64;
            if next >= target && c > 0 {
                let frac = (target - seen) / c as f64;
                return f64::from(self.lo) + (i as f64 + frac) * self.bin_width();
            }
            seen = next;
        }
        f64::from(self.hi)
    }
}

/// How a clipping range is chosen from [`TensorStats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibrator {
    /// The full observed range.
    MinMax,
    /// Clip both tails so that this percentage of the values is inside (e.g. 99.99).
    Percentile(f64),
    /// The range with the least expected squared quantization error (rounding inside, clipping outside).
    Mse,
    /// The range whose quantized distribution has the least KL divergence from the observed one.
    Entropy,
}

impl Calibrator {
    /// True when the calibrator needs a histogram (a second pass over the data).
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Calibrator::MinMax)
    }

    /// The clipping range `[lo, hi]` (always containing 0) for a tensor quantized to `levels` steps.
    pub fn range(self, s: &TensorStats, levels: u32) -> (f32, f32) {
        let full = (s.min.min(0.0), s.max.max(0.0));
        if s.count == 0 || !(s.min.is_finite() && s.max.is_finite()) {
            return (0.0, 0.0);
        }
        let Some(h) = s.hist.as_ref().filter(|_| self.needs_histogram()) else {
            return full;
        };
        let (lo, hi) = match self {
            Calibrator::MinMax => return full,
            Calibrator::Percentile(p) => {
                let tail = (1.0 - p / 100.0).clamp(0.0, 1.0) / 2.0;
                (h.quantile(tail), h.quantile(1.0 - tail))
            }
            Calibrator::Mse => search_range(h, |lo, hi| mse(h, lo, hi, levels)),
            Calibrator::Entropy => search_range(h, |lo, hi| kl(h, lo, hi, levels)),
        };
        (
            (lo as f32).clamp(full.0, 0.0),
            (hi as f32).clamp(0.0, full.1),
        )
    }
}

/// Shrinks the histogram's range towards 0 in 200 steps and keeps the best by `cost` (lowest; ties:
/// the widest range).
fn search_range(h: &Histogram, cost: impl Fn(f64, f64) -> f64) -> (f64, f64) {
    let (lo, hi) = (f64::from(h.lo), f64::from(h.hi));
    let mut best = (cost(lo, hi), lo, hi);
    for step in 1..200 {
        let t = 1.0 - f64::from(step) / 200.0;
        let c = cost(lo * t, hi * t);
        if c < best.0 {
            best = (c, lo * t, hi * t);
        }
    }
    (best.1, best.2)
}

/// Expected squared error of quantizing the histogram's values to `levels` steps over `[lo, hi]`:
/// uniform rounding noise (step²/12) inside, the distance to the clip outside.
fn mse(h: &Histogram, lo: f64, hi: f64, levels: u32) -> f64 {
    let step = (hi - lo) / f64::from(levels.max(2) - 1);
    let inside = step * step / 12.0;
    h.bins
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &c)| {
            let x = h.centre(i);
            let e = if x < lo {
                (lo - x).powi(2)
            } else if x > hi {
                (x - hi).powi(2)
            } else {
                inside
            };
            e * c as f64
        })
        .sum()
}

/// KL divergence between the histogram (clipped values folded into the end bins of `[lo, hi]`) and
/// the same mass spread evenly over each of `levels` quantization steps (over its non-empty bins), as
/// TensorRT's entropy calibration does.
fn kl(h: &Histogram, lo: f64, hi: f64, levels: u32) -> f64 {
    let w = h.bin_width();
    let first = ((lo - f64::from(h.lo)) / w).round().max(0.0) as usize;
    let last = (((hi - f64::from(h.lo)) / w).round() as usize).clamp(first + 1, h.bins.len());
    let mut p: Vec<f64> = h.bins[first..last].iter().map(|&c| c as f64).collect();
    let below: u64 = h.bins[..first].iter().sum();
    let above: u64 = h.bins[last..].iter().sum();
    if let Some(v) = p.first_mut() {
        *v += below as f64;
    }
    if let Some(v) = p.last_mut() {
        *v += above as f64;
    }
    let n = p.len();
    let levels = (levels as usize).max(1);
    let mut q = vec![0.0; n];
    for l in 0..levels.min(n) {
        let (a, b) = (l * n / levels.min(n), (l + 1) * n / levels.min(n));
        let mass: f64 = p[a..b].iter().sum();
        let nonzero = p[a..b].iter().filter(|&&v| v > 0.0).count();
        if nonzero > 0 {
            for j in a..b {
                if p[j] > 0.0 {
                    q[j] = mass / nonzero as f64;
                }
            }
        }
    }
    let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if ps == 0.0 || qs == 0.0 {
        return f64::INFINITY;
    }
    p.iter()
        .zip(&q)
        .filter(|(pv, _)| **pv > 0.0)
        .map(|(pv, qv)| {
            let (pn, qn) = (pv / ps, (qv / qs).max(1e-12));
            pn * (pn / qn).ln()
        })
        .sum()
}

impl fmt::Display for Calibrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Calibrator::MinMax => write!(f, "minmax"),
            Calibrator::Percentile(p) => write!(f, "percentile:{p}"),
            Calibrator::Mse => write!(f, "mse"),
            Calibrator::Entropy => write!(f, "entropy"),
        }
    }
}

impl FromStr for Calibrator {
    type Err = String;

    /// `minmax`, `percentile` (99.99) or `percentile:P`, `mse`, `entropy`.
    fn from_str(s: &str) -> Result<Calibrator, String> {
        match s {
            "minmax" => Ok(Calibrator::MinMax),
            "mse" => Ok(Calibrator::Mse),
            "entropy" => Ok(Calibrator::Entropy),
            "percentile" => Ok(Calibrator::Percentile(99.99)),
            _ => match s.strip_prefix("percentile:").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Calibrator::Percentile(p)),
                Some(_) => Err(format!(
                    "'{s}': the percentile must be a number in (50, 100], e.g. percentile:99.99"
                )),
                None => Err(format!(
                    "'{s}' is not a calibrator: minmax, percentile[:P], mse or entropy"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(xs: &[f32]) -> TensorStats {
        let mut s = TensorStats::new();
        s.observe(xs);
        let mut h = Histogram::new(s.min, s.max);
        h.add(xs);
        s.hist = Some(h);
        s
    }

    #[test]
    fn minmax_is_the_observed_range_with_zero() {
        let s = stats(&[1.0, 2.0, 3.0]);
        assert_eq!(Calibrator::MinMax.range(&s, 256), (0.0, 3.0));
    }

    #[test]
    fn percentile_clips_an_outlier() {
        let mut xs: Vec<f32> = (0..10_000).map(|i| (i % 100) as f32 / 100.0).collect();
        xs.push(1000.0);
        let s = stats(&xs);
        let (lo, hi) = Calibrator::Percentile(99.9).range(&s, 256);
        assert_eq!(lo, 0.0);
        assert!(hi < 2.0, "hi {hi}");
        // One outlier among 10,001 values: clipping it all the way costs more than the rounding
        // noise it saves, so MSE clips only a little.
        let (_, hi) = Calibrator::Mse.range(&s, 256);
        assert!(hi < 1000.0 && hi > 2.0, "mse hi {hi}");
        let (_, hi) = Calibrator::Entropy.range(&s, 256);
        assert!(hi < 1000.0, "entropy hi {hi}");
    }

    #[test]
    fn calibrator_names_parse() {
        for s in ["minmax", "percentile:99.9", "mse", "entropy"] {
            assert_eq!(
                s.parse::<Calibrator>().map(|c| c.to_string()).as_deref(),
                Ok(s)
            );
        }
        assert!("percentile:20".parse::<Calibrator>().is_err());
        assert!("max".parse::<Calibrator>().is_err());
    }
}
