//! AVX-512 VNNI kernel over the packed layout (see `pack.rs`).
//!
//! Per group of 16 rows and block of 32 elements: 4 (Q4) or 8 (Q8_0) 64-byte loads give 8
//! vectors of unsigned weight bytes (16 rows x 4 consecutive elements); each is multiplied by
//! the 4 matching activation bytes broadcast to all lanes with one `vpdpbusd`. The 16 i32 lanes
//! are the 16 rows' block dot products; one FMA applies `d_w * d_x` and one adds `c_w * s_x`.
//! The expanded weights stay in registers for up to [`MAX_TILE`] activation rows. The U8
//! layout (a scale and offset per half block) keeps two sums, one per half.

pub(super) use imp::*;

/// Activation rows processed per pass over a weight block held in registers.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const MAX_TILE: usize = 8;

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::super::pack::{Layout, VEC_BYTES};
    use super::super::{PackedMatrix, ROW_GROUP, blocks, prefetch_ahead};
    use super::MAX_TILE;
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

    /// Whether the CPU has every feature this kernel is compiled for.
    pub(crate) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
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
        // SAFETY: `KernelContext::with_isa` refuses `Isa::Avx512Vnni` unless `available()`, so the
        // CPU supports every feature `groups_impl` is compiled with.
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

    /// Borrowed inputs of one tile: a group's packed bytes and `NT` activation rows.
    struct Tile<'a> {
        gdata: &'a [u8],
        nb: usize,
        k: usize,
        /// Quants of the tile's first activation row onwards.
        xq: &'a [i8],
        xd: &'a [f32],
        xs: &'a [f32],
        /// Half-block sums (two per block).
        xs16: &'a [f32],
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
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
            let at = g * ROW_GROUP - base;
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
                // SAFETY: same CPU features as this function; the tile's slices hold `nt` rows.
                unsafe {
                    match nt {
                        8 => tile_impl::<T, 8>(&tile, outs, at, valid),
                        7 => tile_impl::<T, 7>(&tile, outs, at, valid),
                        6 => tile_impl::<T, 6>(&tile, outs, at, valid),
                        5 => tile_impl::<T, 5>(&tile, outs, at, valid),
                        4 => tile_impl::<T, 4>(&tile, outs, at, valid),
                        3 => tile_impl::<T, 3>(&tile, outs, at, valid),
                        2 => tile_impl::<T, 2>(&tile, outs, at, valid),
                        _ => tile_impl::<T, 1>(&tile, outs, at, valid),
                    }
                }
                j += nt;
            }
        }
    }

    /// One group of 16 rows times `NT` activation rows; writes `outs[jj][at..at + valid]`.
    ///
    /// # Safety
    /// The CPU must support the enabled features; `tile` must hold `NT` activation rows and
    /// `gdata` `nb` group blocks of type `T` (both guaranteed by construction in the callers).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")]
    #[inline]
    unsafe fn tile_impl<const T: u8, const NT: usize>(
        tile: &Tile,
        outs: &mut [&mut [f32]],
        at: usize,
        valid: usize,
    ) {
        let gbb = layout(T).group_block_bytes();
        let qs_off = layout(T).qs_offset();
        assert!(tile.gdata.len() >= tile.nb * gbb && tile.xq.len() >= NT * tile.k);
        assert!(tile.xd.len() >= NT * tile.nb && tile.xs.len() >= NT * tile.nb && outs.len() >= NT);
        assert!(tile.xs16.len() >= 2 * NT * tile.nb);
        let mask = _mm512_set1_epi8(0x0f);
        let mut acc = [_mm512_setzero_ps(); NT];
        let mut cacc = [_mm512_setzero_ps(); NT];
        for b in 0..tile.nb {
            // SAFETY: block `b < nb` lies inside `gdata` (asserted above); loads are unaligned.
            let p = unsafe { tile.gdata.as_ptr().add(b * gbb) };
            prefetch_ahead(p, gbb);
            // SAFETY: 32 bytes of f16 scales at the start of the group block.
            let dv = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) };
            let cv = match T {
                // SAFETY: Q4_1 group blocks hold 16 f16 offsets after the scales (U8 ones the
                // second half block's scales).
                Q4_1 | U8 | Q5 => unsafe {
                    _mm512_cvtph_ps(_mm256_loadu_si256(p.add(32) as *const __m256i))
                },
                Q4_0 => _mm512_mul_ps(dv, _mm512_set1_ps(-8.0)),
                _ => _mm512_mul_ps(dv, _mm512_set1_ps(-128.0)),
            };
            // U8 only: the two half blocks' offsets.
            let (c_lo, c_hi) = if T == U8 {
                // SAFETY: U8 group blocks hold 2 x 16 f16 offsets after the 2 x 16 scales.
                unsafe {
                    (
                        _mm512_cvtph_ps(_mm256_loadu_si256(p.add(64) as *const __m256i)),
                        _mm512_cvtph_ps(_mm256_loadu_si256(p.add(96) as *const __m256i)),
                    )
                }
            } else {
                (_mm512_setzero_ps(), _mm512_setzero_ps())
            };
            // SAFETY: the qs vectors (4 or 8 x 64 bytes) end at the end of the group block.
            let q = unsafe { p.add(qs_off) };
            let mut wv = [_mm512_setzero_si512(); 8];
            if T == Q8_0 || T == U8 {
                for (t, v) in wv.iter_mut().enumerate() {
                    // SAFETY: vector `t < 8` of an 8-bit group block.
                    *v = unsafe { _mm512_loadu_si512(q.add(t * VEC_BYTES) as *const _) };
                }
            } else {
                for t in 0..4 {
                    // SAFETY: vector `t < 4` of a Q4 group block.
                    let v = unsafe { _mm512_loadu_si512(q.add(t * VEC_BYTES) as *const _) };
                    wv[t] = _mm512_and_si512(v, mask);
                    // Shifted once here rather than once per activation row below.
                    wv[t + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
                }
                if T == Q5 {
                    // SAFETY: the 64-byte high-bit plane after the 4 vectors.
                    let plane = unsafe { _mm512_loadu_si512(q.add(4 * VEC_BYTES) as *const _) };
                    // Bit `v` of each plane byte is bit 4 of vector `v`'s byte: a 16-bit shift
                    // by at most 4 moves it to bit 4 of the same byte.
                    let bit4 = _mm512_set1_epi8(0x10);
                    let shifted = [
                        _mm512_slli_epi16::<4>(plane),
                        _mm512_slli_epi16::<3>(plane),
                        _mm512_slli_epi16::<2>(plane),
                        _mm512_slli_epi16::<1>(plane),
                        plane,
                        _mm512_srli_epi16::<1>(plane),
                        _mm512_srli_epi16::<2>(plane),
                        _mm512_srli_epi16::<3>(plane),
                    ];
                    for (w, s) in wv.iter_mut().zip(shifted) {
                        *w = _mm512_or_si512(*w, _mm512_and_si512(s, bit4));
                    }
                }
            }
            for jj in 0..NT {
                // SAFETY: activation row `jj < NT`, block `b < nb`: 32 bytes inside `xq`.
                let xb = unsafe { tile.xq.as_ptr().add(jj * tile.k + b * QK) } as *const i32;
                let i = jj * tile.nb + b;
                if T == U8 {
                    // Each half block has its own scale and offset: two sums of 16 products.
                    let mut sums = [_mm512_setzero_si512(); 2];
                    for (t, &w) in wv.iter().enumerate() {
                        // SAFETY: a 4-byte read at offset 4t < 32 of the block.
                        let x = unsafe { xb.add(t).read_unaligned() };
                        sums[t / 4] = _mm512_dpbusd_epi32(sums[t / 4], w, _mm512_set1_epi32(x));
                    }
                    let dx = _mm512_set1_ps(tile.xd[i]);
                    let (lo, hi) = (_mm512_mul_ps(dv, dx), _mm512_mul_ps(cv, dx));
                    acc[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[0]), lo, acc[jj]);
                    acc[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[1]), hi, acc[jj]);
                    let (s_lo, s_hi) = (tile.xs16[2 * i], tile.xs16[2 * i + 1]);
                    cacc[jj] = _mm512_fmadd_ps(c_lo, _mm512_set1_ps(s_lo), cacc[jj]);
                    cacc[jj] = _mm512_fmadd_ps(c_hi, _mm512_set1_ps(s_hi), cacc[jj]);
                    continue;
                }
                // One running sum over the block's 32 products: the low-nibble (or first 16)
                // elements, then the high-nibble (or last 16) ones.
                let mut isum = _mm512_setzero_si512();
                for (t, &w) in wv.iter().enumerate() {
                    // SAFETY: a 4-byte read at offset 4t < 32 of the block.
                    let x = unsafe { xb.add(t).read_unaligned() };
                    isum = _mm512_dpbusd_epi32(isum, w, _mm512_set1_epi32(x));
                }
                let scale = _mm512_mul_ps(dv, _mm512_set1_ps(tile.xd[i]));
                acc[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[jj]);
                cacc[jj] = _mm512_fmadd_ps(cv, _mm512_set1_ps(tile.xs[i]), cacc[jj]);
            }
        }
        for jj in 0..NT {
            let v = _mm512_add_ps(acc[jj], cacc[jj]);
            let dst = &mut outs[jj][at..at + valid];
            let m: __mmask16 = if valid >= ROW_GROUP {
                0xffff
            } else {
                (1u16 << valid) - 1
            };
            // SAFETY: the mask enables exactly `valid = dst.len()` lanes; masked-off lanes are
            // neither read nor written.
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), m, v) };
        }
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
