//! The kernels on SmolLM2-135M's real weights (Q4_1 projections, the Q8_0 token embedding that
//! is also the output layer), when the model is on disk (`scripts/` unpacks it into `models/`;
//! or set `AGENTC_TEST_GGUF`). Skipped, with a note, when it is not.

use agentc_kernels::*;
use std::collections::HashMap;

const DEFAULT_GGUF: &str = "../models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// GGUF's default data alignment.
const GGUF_ALIGNMENT: usize = 32;

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        self.at += n;
        &self.b[self.at - n..self.at]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8_lossy(self.take(n)).into_owned()
    }
    /// Skips a metadata value of GGUF type `t`.
    fn skip_value(&mut self, t: u32) {
        match t {
            0 | 1 | 7 => self.at += 1,
            2 | 3 => self.at += 2,
            4..=6 => self.at += 4,
            10..=12 => self.at += 8,
            8 => {
                self.string();
            }
            9 => {
                let (et, n) = (self.u32(), self.u64());
                for _ in 0..n {
                    self.skip_value(et);
                }
            }
            _ => panic!("unknown gguf value type {t}"),
        }
    }
}

/// name -> (ggml type id, [cols, rows], absolute byte offset).
fn tensors(b: &[u8]) -> HashMap<String, (u32, Vec<usize>, usize)> {
    let mut r = Reader { b, at: 0 };
    assert_eq!(r.take(4), b"GGUF");
    let _version = r.u32();
    let (nt, nkv) = (r.u64(), r.u64());
    for _ in 0..nkv {
        let _key = r.string();
        let t = r.u32();
        r.skip_value(t);
    }
    let mut infos = Vec::new();
    for _ in 0..nt {
        let name = r.string();
        let nd = r.u32() as usize;
        let dims: Vec<usize> = (0..nd).map(|_| r.u64() as usize).collect();
        let (ty, off) = (r.u32(), r.u64() as usize);
        infos.push((name, ty, dims, off));
    }
    let data = r.at.div_ceil(GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
    infos
        .into_iter()
        .map(|(n, t, d, o)| (n, (t, d, data + o)))
        .collect()
}

#[test]
fn real_weights_packed_matmul_matches_oracle() {
    let path = std::env::var("AGENTC_TEST_GGUF").unwrap_or_else(|_| DEFAULT_GGUF.to_string());
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipped: no model at {path}");
        return;
    };
    let t = tensors(&bytes);
    // (tensor, rows to use): the embedding is cut to keep the debug-build oracle quick.
    for (name, max_rows) in [
        ("blk.0.attn_q.weight", 576),
        ("blk.3.ffn_down.weight", 576),
        ("token_embd.weight", 700),
    ] {
        let (id, dims, off) = t[name].clone();
        let ty = GgmlType::from_id(id).unwrap();
        let (cols, rows) = (dims[0], dims[1].min(max_rows));
        let len = ty.row_bytes(cols).unwrap() * rows;
        let w = QMatrix::new(ty, rows, cols, &bytes[off..off + len]).unwrap();
        let mut row = vec![0.0f32; cols];
        dequantize_row(ty, &bytes[off..off + ty.row_bytes(cols).unwrap()], &mut row).unwrap();
        assert!(
            row.iter().all(|v| v.is_finite() && v.abs() < 100.0),
            "{name}: implausible weights"
        );
        let n = 3;
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut want = vec![0.0; n * rows];
        matmul_ref(&w, &x, n, &mut want).unwrap();
        let packed = PackedMatrix::pack(&w).unwrap();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
            .into_iter()
            .filter(|i| i.is_available())
        {
            let ctx = KernelContext::with_isa(isa, 2).unwrap();
            let mut got = vec![0.0; n * rows];
            matmul(&packed, &x, n, &mut got, &ctx).unwrap();
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * scale + 1e-6,
                    "{name} {isa:?}: {a} vs {b}"
                );
            }
        }
        eprintln!("{name}: {ty} {rows}x{cols} ok");
    }
}
