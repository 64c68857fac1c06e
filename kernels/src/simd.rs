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
