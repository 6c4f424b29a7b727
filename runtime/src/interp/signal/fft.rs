//! Complex FFT of any length in f64: iterative radix-2 for powers of two, Bluestein's chirp-z
//! algorithm (on a radix-2 FFT of at least twice the length) otherwise. Unnormalized in both
//! directions (`inverse` uses `e^{+2πi·jk/n}`; the caller divides by `n`).

use std::f64::consts::PI;
use std::ops::{Add, Mul, Sub};

/// A complex number.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct C {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl C {
    /// `re + i·im`.
    pub const fn new(re: f64, im: f64) -> C {
        C { re, im }
    }

    /// The complex conjugate.
    pub fn conj(self) -> C {
        C::new(self.re, -self.im)
    }

    /// `e^{iθ}`.
    fn cis(theta: f64) -> C {
        C::new(theta.cos(), theta.sin())
    }
}

impl Add for C {
    type Output = C;
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
}

impl Sub for C {
    type Output = C;
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
}

impl Mul for C {
    type Output = C;
    fn mul(self, o: C) -> C {
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

/// A radix-2 plan: bit-reversal permutation and forward twiddles `e^{-2πik/n}`, `k < n/2`.
struct Radix2 {
    rev: Vec<usize>,
    tw: Vec<C>,
}

impl Radix2 {
    fn new(n: usize) -> Radix2 {
        debug_assert!(n.is_power_of_two());
        let bits = n.trailing_zeros();
        let rev = (0..n)
            .map(|i| {
                if bits == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - bits)
                }
            })
            .collect();
        let tw = (0..n / 2)
            .map(|k| C::cis(-2.0 * PI * k as f64 / n as f64))
            .collect();
        Radix2 { rev, tw }
    }

    fn run(&self, buf: &mut [C], inverse: bool) {
        let n = buf.len();
        for i in 0..n {
            let j = self.rev[i];
            if i < j {
                buf.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for start in (0..n).step_by(len) {
                for j in 0..half {
                    let w = self.tw[j * step];
                    let w = if inverse { w.conj() } else { w };
                    let u = buf[start + j];
                    let v = buf[start + j + half] * w;
                    buf[start + j] = u + v;
                    buf[start + j + half] = u - v;
                }
            }
            len *= 2;
        }
    }
}

enum Kind {
    Radix2(Radix2),
    Bluestein {
        /// Chirp `e^{-πi·k²/n}`, `k < n`.
        chirp: Vec<C>,
        /// FFT (size `m`) of the conjugate chirp laid out for circular convolution.
        kernel: Vec<C>,
        inner: Radix2,
    },
}

/// An FFT plan for one length.
pub struct Fft {
    n: usize,
    kind: Kind,
}

impl Fft {
    /// A plan for length `n` (`n >= 1`).
    pub fn new(n: usize) -> Fft {
        if n.is_power_of_two() {
            return Fft {
                n,
                kind: Kind::Radix2(Radix2::new(n)),
            };
        }
        let m = (2 * n - 1).next_power_of_two();
        let inner = Radix2::new(m);
        // k² mod 2n keeps the angle argument small (exact in integers).
        let chirp: Vec<C> = (0..n)
            .map(|k| {
                let k2 = (k as u128 * k as u128 % (2 * n as u128)) as f64;
                C::cis(-PI * k2 / n as f64)
            })
            .collect();
        let mut kernel = vec![C::default(); m];
        kernel[0] = chirp[0].conj();
        for k in 1..n {
            kernel[k] = chirp[k].conj();
            kernel[m - k] = chirp[k].conj();
        }
        inner.run(&mut kernel, false);
        Fft {
            n,
            kind: Kind::Bluestein {
                chirp,
                kernel,
                inner,
            },
        }
    }

    /// Transforms `buf` (length `n`) in place: `X_k = Σ_j x_j e^{∓2πi·jk/n}` (− forward, + inverse).
    pub fn run(&self, buf: &mut [C], inverse: bool) {
        debug_assert_eq!(buf.len(), self.n);
        match &self.kind {
            Kind::Radix2(r) => r.run(buf, inverse),
            Kind::Bluestein {
                chirp,
                kernel,
                inner,
            } => {
                // inverse(x) = conj(forward(conj(x)))
                let m = kernel.len();
                let mut a = vec![C::default(); m];
                for (k, (dst, &x)) in a.iter_mut().zip(buf.iter()).enumerate() {
                    let x = if inverse { x.conj() } else { x };
                    *dst = x * chirp[k];
                }
                inner.run(&mut a, false);
                for (x, &k) in a.iter_mut().zip(kernel) {
                    *x = *x * k;
                }
                inner.run(&mut a, true);
                let scale = 1.0 / m as f64;
                for (k, dst) in buf.iter_mut().enumerate() {
                    let v = a[k] * chirp[k];
                    let v = C::new(v.re * scale, v.im * scale);
                    *dst = if inverse { v.conj() } else { v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[C], inverse: bool) -> Vec<C> {
        let n = x.len();
        let sign = if inverse { 1.0 } else { -1.0 };
        (0..n)
            .map(|k| {
                x.iter().enumerate().fold(C::default(), |acc, (j, &v)| {
                    let ang = sign * 2.0 * PI * ((j * k) % n) as f64 / n as f64;
                    acc + v * C::cis(ang)
                })
            })
            .collect()
    }

    #[test]
    fn matches_the_naive_dft_for_many_lengths() {
        for n in [1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 30, 64, 100] {
            let x: Vec<C> = (0..n)
                .map(|i| C::new((i as f64 * 0.7).sin(), (i as f64 * 1.3).cos() - 0.2))
                .collect();
            let plan = Fft::new(n);
            for inverse in [false, true] {
                let mut y = x.clone();
                plan.run(&mut y, inverse);
                let want = naive(&x, inverse);
                for (a, b) in y.iter().zip(&want) {
                    assert!(
                        (a.re - b.re).abs() < 1e-9 && (a.im - b.im).abs() < 1e-9,
                        "n={n} inverse={inverse}: {a:?} vs {b:?}"
                    );
                }
            }
        }
    }
}
