//! Compile-time multiversioning for the f32 kernels: [`dispatch!`] defines a body once and
//! compiles it for the baseline target and with AVX2 + FMA enabled (LLVM then vectorizes it 8
//! wide and fuses multiply-adds), choosing at run time. `is_x86_feature_detected!` caches its
//! answer in std after the first call, so the check costs one load.

/// Whether the AVX2 + FMA versions may run on this CPU.
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dispatch!(fn name(args) { body });` defines a local `fn name(args)` that runs `body`
/// compiled with AVX2 + FMA when the CPU has them, else the baseline build of `body`.
macro_rules! dispatch {
    (fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        #[inline(always)]
        fn generic($($arg: $ty),*) $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn avx2($($arg: $ty),*) {
            generic($($arg),*)
        }

        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { avx2($($arg),*) };
                return;
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// `exp(x)` in plain f32 arithmetic with no libm call, so loops over it vectorize (Cephes'
/// `expf`: `x = n ln2 + r`, a degree-7 polynomial for `e^r`, `2^n` built in the exponent bits).
/// Relative error about 2e-7 for `x` in [-87.3, 88.3]; 0 below (so `exp(-inf) = 0`), and the
/// value at 88.3 above (finite; callers pass `x <= 0` or want saturation).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HI` is exact for |n| <= 128.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MIN_X: f32 = -87.3;
    const MAX_X: f32 = 88.3;
    // 1.5 * 2^23: adding and removing it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let xc = x.clamp(MIN_X, MAX_X);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    // `shifted` is exactly ROUND + n (n integral, |n| <= 127, one binade), so its bits are
    // ROUND's plus n: integer arithmetic on the bits, which vectorizes, where `n as i32`
    // (saturating, NaN to 0) is converted one lane at a time.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    if x < MIN_X { 0.0 } else { y * scale }
}

/// Sum of 16 partial sums as a tree (8 + 8, 4 + 4, ...): a handful of vector adds, where a
/// left-to-right sum is 15 dependent scalar adds (the compiler may not reassociate floats).
#[inline(always)]
pub(crate) fn sum16(mut acc: [f32; 16]) -> f32 {
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

/// Lanes of independent partial results in the reductions below.
const RED_LANES: usize = 16;

/// Sum with 16 independent partial sums (vectorizes; the order differs from left to right).
#[inline(always)]
pub(crate) fn sum_f32(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; RED_LANES];
    let chunks = x.chunks_exact(RED_LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..RED_LANES {
            acc[i] += c[i];
        }
    }
    sum16(acc) + tail
}

/// Maximum with 16 independent partial maxima (NaNs are ignored, as `f32::max` does).
#[inline(always)]
pub(crate) fn max_f32(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; RED_LANES];
    let chunks = x.chunks_exact(RED_LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..RED_LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_is_within_3e_7_and_saturates_at_the_ends() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (f64::from(exp_f32(x)), f64::from(x).exp());
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.037;
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(1000.0).is_finite());
    }
}
