//! Property test: for random shapes, types, values and thread counts, every available
//! instruction set agrees with the raw-bytes oracle (same tolerance as `matmul.rs`).

use agentc_kernels::*;
use proptest::prelude::*;

fn ty_of(i: u8) -> GgmlType {
    [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::F16,
    ][i as usize % 4]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn packed_matmul_matches_oracle(
        rows in 1usize..70,
        kb in 1usize..6,
        n in 1usize..12,
        t in 0u8..4,
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let (ty, k) = (ty_of(t), kb * QK);
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        let wf: Vec<f32> = (0..rows * k).map(|_| next() * 2.0).collect();
        let x: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let bytes = quantize_matrix(ty, &wf, rows, k).unwrap();
        let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
        let mut want = vec![0.0f32; n * rows];
        matmul_ref(&w, &x, n, &mut want).unwrap();
        let packed = PackedMatrix::pack(&w).unwrap();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni] {
            if !isa.is_available() {
                continue;
            }
            let ctx = KernelContext::with_isa(isa, threads).unwrap();
            let mut got = vec![f32::NAN; n * rows];
            matmul(&packed, &x, n, &mut got, &ctx).unwrap();
            for (a, b) in got.iter().zip(&want) {
                prop_assert!((a - b).abs() <= 2e-5 * k as f32 + 1e-6, "{ty} {isa:?}: {a} vs {b}");
            }
        }
    }
}
