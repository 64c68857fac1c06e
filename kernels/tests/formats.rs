//! Block formats: hand-computed blocks, round trips and length errors.

use agentc_kernels::*;
use half::f16;

fn h(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

#[test]
fn type_sizes_match_ggml() {
    let expect = [
        (GgmlType::F32, 1, 4),
        (GgmlType::F16, 1, 2),
        (GgmlType::Q4_0, 32, 18),
        (GgmlType::Q4_1, 32, 20),
        (GgmlType::Q8_0, 32, 34),
        (GgmlType::Q8_1, 32, 36),
    ];
    for (ty, bs, ts) in expect {
        assert_eq!((ty.block_size(), ty.type_size()), (bs, ts), "{ty}");
        assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
    }
    assert_eq!(GgmlType::from_id(4), None);
    assert_eq!(GgmlType::Q4_1.row_bytes(576), Ok(360));
    assert!(matches!(
        GgmlType::Q4_1.row_bytes(33),
        Err(Error::NotBlockAligned { .. })
    ));
}

#[test]
fn q4_0_hand_block() {
    // d = 0.5; byte i = (lo = i, hi = 15 - i).
    let mut b = h(0.5).to_vec();
    b.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
    let mut out = [0.0f32; 32];
    dequantize_row_q4_0(&b, &mut out).unwrap();
    for i in 0..16 {
        assert_eq!(out[i], (i as f32 - 8.0) * 0.5);
        assert_eq!(out[i + 16], ((15 - i) as f32 - 8.0) * 0.5);
    }
}

#[test]
fn q4_1_hand_block() {
    let mut b = h(0.25).to_vec();
    b.extend(h(-1.0));
    b.extend((0..16u8).map(|i| (i & 0x0f) | (((i + 3) & 0x0f) << 4)));
    let mut out = [0.0f32; 32];
    dequantize_row_q4_1(&b, &mut out).unwrap();
    for i in 0..16 {
        assert_eq!(out[i], i as f32 * 0.25 - 1.0);
        assert_eq!(out[i + 16], ((i + 3) & 15) as f32 * 0.25 - 1.0);
    }
}

#[test]
fn q8_0_and_q8_1_hand_blocks() {
    let qs: Vec<i8> = (0..32).map(|i| (i * 8 - 128) as i8).collect();
    let mut b = h(2.0).to_vec();
    b.extend(qs.iter().map(|&q| q as u8));
    let mut out = [0.0f32; 32];
    dequantize_row_q8_0(&b, &mut out).unwrap();
    for i in 0..32 {
        assert_eq!(out[i], qs[i] as f32 * 2.0);
    }
    let mut b1 = h(2.0).to_vec();
    b1.extend(h(0.0));
    b1.extend(qs.iter().map(|&q| q as u8));
    dequantize_row_q8_1(&b1, &mut out).unwrap();
    assert_eq!(out[5], qs[5] as f32 * 2.0);
}

#[test]
fn f16_and_f32_rows() {
    let vals = [1.0f32, -2.5, 0.0, 65504.0];
    let mut b = Vec::new();
    for v in vals {
        b.extend(h(v));
    }
    let mut out = [0.0f32; 4];
    dequantize_row_f16(&b, &mut out).unwrap();
    assert_eq!(out, vals);
    let b32: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    dequantize_row_f32(&b32, &mut out).unwrap();
    assert_eq!(out, vals);
}

#[test]
fn wrong_lengths_are_errors() {
    let mut out = [0.0f32; 32];
    assert!(matches!(
        dequantize_row_q4_1(&[0u8; 19], &mut out),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        dequantize_row_q4_0(&[0u8; 20], &mut out),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        dequantize_row_q8_0(&[0u8; 34], &mut out[..31]),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(matches!(
        dequantize_row_f16(&[0u8; 3], &mut out[..1]),
        Err(Error::LengthMismatch { .. })
    ));
    let mut q = [0u8; 35];
    assert!(quantize_row_q8_0(&out, &mut q).is_err());
    assert!(QMatrix::new(GgmlType::Q4_1, 2, 64, &[0u8; 79]).is_err());
    assert!(Q8Activations::quantize(&out, 2, 32).is_err());
}

/// Round trips stay within half a quantization step of each block.
#[test]
fn quantize_round_trip_error_bounds() {
    let x: Vec<f32> = (0..256)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::F16,
    ] {
        let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
        quantize_row(ty, &x, &mut q).unwrap();
        let mut back = vec![0.0f32; x.len()];
        dequantize_row(ty, &q, &mut back).unwrap();
        for (xb, bb) in x.chunks(32).zip(back.chunks(32)) {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = xb
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // Q4_0 maps the extreme to -8, so its step is amax / 8 (and +7 * step clips);
            // Q4_1 step (max - min) / 15; Q8 step amax / 127. f16 scales add ~1e-3 relative.
            let tol = match ty {
                GgmlType::Q4_0 => amax / 8.0 * 1.01,
                GgmlType::Q4_1 => (hi - lo) / 15.0 * 0.5 + 1e-3 * amax,
                GgmlType::F16 => amax * 1e-3,
                _ => amax / 127.0 * 0.5 + 1e-3 * amax,
            };
            for (a, b) in xb.iter().zip(bb) {
                assert!((a - b).abs() <= tol, "{ty}: {a} vs {b} (tol {tol})");
            }
        }
    }
}

#[test]
fn q8_1_sum_field() {
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
    let mut q = [0u8; 36];
    quantize_row_q8_1(&x, &mut q).unwrap();
    let d = f16::from_le_bytes([q[0], q[1]]).to_f32();
    let s = f16::from_le_bytes([q[2], q[3]]).to_f32();
    let sum: i32 = q[4..].iter().map(|&b| b as i8 as i32).sum();
    assert!((s - d * sum as f32).abs() <= 1e-3 * s.abs().max(1.0));
}
