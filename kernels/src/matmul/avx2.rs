//! AVX2 kernel over the packed layout (see `pack.rs`), for x86-64 CPUs without AVX-512 VNNI.
//!
//! A 256-bit register holds 8 rows x 4 bytes, so a group of 16 rows is done as two halves.
//! `vpmaddubsw` multiplies unsigned weights by signed activations into i16 pairs: for Q4 the 8
//! products of a block are summed in i16 (at most 8 * 2 * 15 * 127 = 30480, no overflow) before
//! one `vpmaddwd`; Q8_0 uses the sign trick (`|w|` times `sign(x, w)`) and widens every step;
//! U8 (unsigned quants up to 63, a scale and offset per half block) widens every two vectors.

pub(super) use imp::*;

/// Activation rows per pass over a weight half-block held in registers (16 ymm registers).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const MAX_TILE: usize = 4;

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::super::pack::{Layout, VEC_BYTES};
    use super::super::{PackedMatrix, ROW_GROUP, blocks, prefetch_ahead};
    use super::{MAX_TILE, add_high_bits};
    use crate::activations::Q8Activations;
    use crate::formats::QK;
    use std::arch::x86_64::*;
    use std::ops::Range;

    const Q4_0: u8 = 0;
    const Q4_1: u8 = 1;
    const Q8_0: u8 = 2;
    const U8: u8 = 3;
    const Q5: u8 = 4;

    /// The layout of kernel variant `T`.
    const fn layout(t: u8) -> Layout {
        match t {
            Q4_0 => Layout::Q4_0,
            Q4_1 => Layout::Q4_1,
            Q8_0 => Layout::Q8_0,
            Q5 => Layout::Q5,
            _ => Layout::U8,
        }
    }
    /// Rows per 256-bit register.
    const HALF: usize = ROW_GROUP / 2;

    /// Whether the CPU has every feature this kernel is compiled for.
    pub(crate) fn available() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    /// See `scalar::matmul_groups`. Only called with a context whose ISA was checked available.
    pub(in crate::matmul) fn matmul_groups(
        w: &PackedMatrix,
        acts: &Q8Activations,
        groups: Range<usize>,
        out: &mut [&mut [f32]],
    ) {
        // SAFETY: `KernelContext::with_isa` refuses `Isa::Avx2` unless `available()`.
        unsafe {
            match w.layout() {
                Layout::Q4_0 => groups_impl::<Q4_0>(w, acts, groups, out),
                Layout::Q4_1 => groups_impl::<Q4_1>(w, acts, groups, out),
                Layout::Q8_0 => groups_impl::<Q8_0>(w, acts, groups, out),
                Layout::U8 => groups_impl::<U8>(w, acts, groups, out),
                Layout::Q5 => groups_impl::<Q5>(w, acts, groups, out),
                Layout::Float => unreachable!("float matrices take the f32 path"),
            }
        }
    }

    struct Tile<'a> {
        gdata: &'a [u8],
        nb: usize,
        k: usize,
        xq: &'a [i8],
        xd: &'a [f32],
        xs: &'a [f32],
        /// Half-block sums (two per block).
        xs16: &'a [f32],
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn groups_impl<const T: u8>(
        w: &PackedMatrix,
        acts: &Q8Activations,
        groups: Range<usize>,
        out: &mut [&mut [f32]],
    ) {
        let (k, nb, n) = (w.cols(), blocks(w.cols()), acts.n());
        let base = groups.start * ROW_GROUP;
        for g in groups {
            let gdata = w.group_data(g);
            let valid = ROW_GROUP.min(w.rows() - g * ROW_GROUP);
            for half in 0..2 {
                let hvalid = valid.saturating_sub(half * HALF).min(HALF);
                if hvalid == 0 {
                    continue;
                }
                let at = g * ROW_GROUP - base + half * HALF;
                let mut j = 0;
                while j < n {
                    let nt = MAX_TILE.min(n - j);
                    let tile = Tile {
                        gdata,
                        nb,
                        k,
                        xq: &acts.qs()[j * k..(j + nt) * k],
                        xd: &acts.d()[j * nb..(j + nt) * nb],
                        xs: &acts.s()[j * nb..(j + nt) * nb],
                        xs16: &acts.s16()[2 * j * nb..2 * (j + nt) * nb],
                    };
                    let outs = &mut out[j..j + nt];
                    // SAFETY: same CPU features as this function; the tile holds `nt` rows.
                    unsafe {
                        match nt {
                            4 => tile_impl::<T, 4>(&tile, half, outs, at, hvalid),
                            3 => tile_impl::<T, 3>(&tile, half, outs, at, hvalid),
                            2 => tile_impl::<T, 2>(&tile, half, outs, at, hvalid),
                            _ => tile_impl::<T, 1>(&tile, half, outs, at, hvalid),
                        }
                    }
                    j += nt;
                }
            }
        }
    }

    /// Half `half` (8 rows) of a group times `NT` activation rows.
    ///
    /// # Safety
    /// The CPU must support the enabled features.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn tile_impl<const T: u8, const NT: usize>(
        tile: &Tile,
        half: usize,
        outs: &mut [&mut [f32]],
        at: usize,
        valid: usize,
    ) {
        let gbb = layout(T).group_block_bytes();
        let qs_off = layout(T).qs_offset();
        assert!(tile.gdata.len() >= tile.nb * gbb && tile.xq.len() >= NT * tile.k);
        assert!(tile.xd.len() >= NT * tile.nb && tile.xs.len() >= NT * tile.nb && outs.len() >= NT);
        assert!(tile.xs16.len() >= 2 * NT * tile.nb);
        let mask = _mm256_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); NT];
        for b in 0..tile.nb {
            // SAFETY: block `b < nb` lies inside `gdata` (asserted above).
            let p = unsafe { tile.gdata.as_ptr().add(b * gbb) };
            prefetch_ahead(p, gbb);
            // SAFETY: 8 f16 scales of this half inside the 32-byte scale array.
            let dv =
                unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.add(16 * half) as *const __m128i)) };
            let cv = match T {
                // SAFETY: Q4_1 group blocks hold 16 f16 offsets after the scales (U8 ones the
                // second half block's scales).
                Q4_1 | U8 | Q5 => unsafe {
                    _mm256_cvtph_ps(_mm_loadu_si128(p.add(32 + 16 * half) as *const __m128i))
                },
                Q4_0 => _mm256_mul_ps(dv, _mm256_set1_ps(-8.0)),
                // The sign trick below multiplies signed weights directly: no correction.
                _ => _mm256_setzero_ps(),
            };
            // U8 only: the two half blocks' offsets.
            let (c_lo, c_hi) = if T == U8 {
                // SAFETY: U8 group blocks hold 2 x 16 f16 offsets after the 2 x 16 scales.
                unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(64 + 16 * half) as *const __m128i)),
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(96 + 16 * half) as *const __m128i)),
                    )
                }
            } else {
                (_mm256_setzero_ps(), _mm256_setzero_ps())
            };
            // SAFETY: the qs vectors end at the end of the group block; this half's 32 bytes.
            let q = unsafe { p.add(qs_off + 32 * half) };
            let mut wv = [_mm256_setzero_si256(); 8];
            if T == U8 {
                for (t, v) in wv.iter_mut().enumerate() {
                    // SAFETY: vector `t < 8` of a U8 group block.
                    *v = unsafe { _mm256_loadu_si256(q.add(t * VEC_BYTES) as *const __m256i) };
                }
            } else if T == Q8_0 {
                for (t, v) in wv.iter_mut().enumerate() {
                    // SAFETY: vector `t < 8` of a Q8_0 group block; undo the +128 offset.
                    let raw = unsafe { _mm256_loadu_si256(q.add(t * VEC_BYTES) as *const __m256i) };
                    *v = _mm256_xor_si256(raw, _mm256_set1_epi8(-128));
                }
            } else {
                for t in 0..4 {
                    // SAFETY: vector `t < 4` of a Q4 group block.
                    let v = unsafe { _mm256_loadu_si256(q.add(t * VEC_BYTES) as *const __m256i) };
                    wv[t] = _mm256_and_si256(v, mask);
                    wv[t + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                }
                if T == Q5 {
                    // SAFETY: this half's 32 bytes of the high-bit plane after the 4 vectors.
                    let plane =
                        unsafe { _mm256_loadu_si256(q.add(4 * VEC_BYTES) as *const __m256i) };
                    add_high_bits(&mut wv, plane);
                }
            }
            for (jj, a) in acc.iter_mut().enumerate() {
                // SAFETY: activation row `jj < NT`, block `b < nb`: 32 bytes inside `xq`.
                let xb = unsafe { tile.xq.as_ptr().add(jj * tile.k + b * QK) } as *const i32;
                let i = jj * tile.nb + b;
                if T == U8 {
                    // Per half block, two vectors of pair sums in i16 (at most 4 x 63 x 127 =
                    // 32004) before widening; each half has its own scale and offset.
                    let mut sums = [_mm256_setzero_si256(); 2];
                    for t in (0..8).step_by(2) {
                        // SAFETY: 4-byte reads at offsets 4t and 4t + 4 < 32 of the block.
                        let (x0, x1) =
                            unsafe { (xb.add(t).read_unaligned(), xb.add(t + 1).read_unaligned()) };
                        let p16 = _mm256_add_epi16(
                            _mm256_maddubs_epi16(wv[t], _mm256_set1_epi32(x0)),
                            _mm256_maddubs_epi16(wv[t + 1], _mm256_set1_epi32(x1)),
                        );
                        sums[t / 4] = _mm256_add_epi32(sums[t / 4], _mm256_madd_epi16(p16, ones));
                    }
                    let dx = _mm256_set1_ps(tile.xd[i]);
                    let (lo, hi) = (_mm256_mul_ps(dv, dx), _mm256_mul_ps(cv, dx));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[0]), lo, *a);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[1]), hi, *a);
                    *a = _mm256_fmadd_ps(c_lo, _mm256_set1_ps(tile.xs16[2 * i]), *a);
                    *a = _mm256_fmadd_ps(c_hi, _mm256_set1_ps(tile.xs16[2 * i + 1]), *a);
                    continue;
                }
                let isum = if T == Q5 {
                    // 5-bit products overflow i16 summed over 8 vectors: widen each 4.
                    let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for t in (0..8).step_by(2) {
                        // SAFETY: 4-byte reads at offsets 4t and 4t + 4 < 32 of the block.
                        let (x0, x1) =
                            unsafe { (xb.add(t).read_unaligned(), xb.add(t + 1).read_unaligned()) };
                        s0 = _mm256_add_epi16(
                            s0,
                            _mm256_maddubs_epi16(wv[t], _mm256_set1_epi32(x0)),
                        );
                        s1 = _mm256_add_epi16(
                            s1,
                            _mm256_maddubs_epi16(wv[t + 1], _mm256_set1_epi32(x1)),
                        );
                    }
                    _mm256_add_epi32(_mm256_madd_epi16(s0, ones), _mm256_madd_epi16(s1, ones))
                } else if T == Q8_0 {
                    let mut s = _mm256_setzero_si256();
                    for (t, &wt) in wv.iter().enumerate() {
                        // SAFETY: 4-byte read at offset 4t < 32 of the block.
                        let x = _mm256_set1_epi32(unsafe { xb.add(t).read_unaligned() });
                        let p16 =
                            _mm256_maddubs_epi16(_mm256_abs_epi8(wt), _mm256_sign_epi8(x, wt));
                        s = _mm256_add_epi32(s, _mm256_madd_epi16(p16, ones));
                    }
                    s
                } else {
                    let mut s0 = _mm256_setzero_si256();
                    let mut s1 = _mm256_setzero_si256();
                    for t in (0..8).step_by(2) {
                        // SAFETY: 4-byte reads at offsets 4t and 4t + 4 < 32 of the block.
                        let (x0, x1) =
                            unsafe { (xb.add(t).read_unaligned(), xb.add(t + 1).read_unaligned()) };
                        s0 = _mm256_add_epi16(
                            s0,
                            _mm256_maddubs_epi16(wv[t], _mm256_set1_epi32(x0)),
                        );
                        s1 = _mm256_add_epi16(
                            s1,
                            _mm256_maddubs_epi16(wv[t + 1], _mm256_set1_epi32(x1)),
                        );
                    }
                    _mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones)
                };
                let scale = _mm256_mul_ps(dv, _mm256_set1_ps(tile.xd[i]));
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, *a);
                *a = _mm256_fmadd_ps(cv, _mm256_set1_ps(tile.xs[i]), *a);
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            let mut lanes = [0.0f32; HALF];
            // SAFETY: `lanes` is 8 f32 = 32 bytes; unaligned store.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
            outs[jj][at..at + valid].copy_from_slice(&lanes[..valid]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Ors bit 4 into each byte of the 8 nibble vectors `wv` from the Q5 high-bit plane (bit `v`
/// of each byte belongs to vector `v`): a 16-bit shift brings bit `v` of every byte to bit 4 of
/// the same byte (shifts of at most 4 never cross into the neighbouring byte's bit 4).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn add_high_bits(wv: &mut [__m256i; 8], plane: __m256i) {
    let bit4 = _mm256_set1_epi8(0x10);
    let shifted = [
        _mm256_slli_epi16::<4>(plane),
        _mm256_slli_epi16::<3>(plane),
        _mm256_slli_epi16::<2>(plane),
        _mm256_slli_epi16::<1>(plane),
        plane,
        _mm256_srli_epi16::<1>(plane),
        _mm256_srli_epi16::<2>(plane),
        _mm256_srli_epi16::<3>(plane),
    ];
    for (w, s) in wv.iter_mut().zip(shifted) {
        *w = _mm256_or_si256(*w, _mm256_and_si256(s, bit4));
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    /// Never available off x86-64.
    pub(crate) fn available() -> bool {
        false
    }
    pub(in crate::matmul) use super::super::scalar::matmul_groups;
}
