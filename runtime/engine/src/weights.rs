//! Model weights copied out of a GGUF file, with their shapes checked against the config.

use agentc_kernels::{PackedMatrix, QMatrix};
use agentc_model::{GgmlType, GgufFile, LlamaConfig};

use crate::error::{Error, Result};

/// A weight matrix of `rows` rows of `cols` values each, stored in a ggml format.
///
/// Owned rather than borrowed from the memory map so that kernels may repack it; the copy of a
/// 100 MB model costs tens of milliseconds at load.
#[derive(Debug)]
pub struct QuantTensor {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    /// The same matrix repacked for `agentc-kernels`' fast matmul, when that backend is in use.
    pub packed: Option<PackedMatrix>,
}

impl QuantTensor {
    /// A tensor over `data` already in `ty`'s layout (`rows * row_bytes` bytes).
    pub fn from_raw(name: &str, ty: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            rows,
            cols,
            data,
            packed: None,
        }
    }

    /// Builds the `agentc-kernels` packing of this matrix (for matmuls; rows stay readable here).
    pub fn pack(&mut self) -> Result<()> {
        let matrix = self.matrix()?;
        self.packed = Some(PackedMatrix::pack(&matrix)?);
        Ok(())
    }

    /// Loads tensor `name`, which must have shape `[cols, rows]` in ggml order.
    pub fn load(gguf: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<Self> {
        let (info, data) = gguf.tensor_data(name)?;
        let expected = if rows == 1 {
            vec![cols as u64]
        } else {
            vec![cols as u64, rows as u64]
        };
        if info.dims != expected {
            return Err(Error::TensorShape {
                tensor: name.to_owned(),
                expected,
                found: info.dims.clone(),
            });
        }
        Ok(Self::from_raw(
            name,
            info.ggml_type,
            rows,
            cols,
            data.to_vec(),
        ))
    }

    /// Frees the ggml-layout bytes of a matrix the kernels read packed (on its own or stacked);
    /// afterwards only the kernels can use it.
    fn release_plain_copy(&mut self) {
        self.data = Vec::new();
    }

    /// The ggml-layout bytes as a kernels matrix.
    pub fn matrix(&self) -> Result<QMatrix<'_>> {
        if !self.ty.is_supported() {
            return Err(agentc_model::Error::UnsupportedTensorType {
                tensor: self.name.clone(),
                type_name: self.ty.name(),
            }
            .into());
        }
        Ok(QMatrix::new(self.ty, self.rows, self.cols, &self.data)?)
    }

    /// Whether the ggml-layout bytes are here (the reference matmul and row lookups need them).
    pub fn has_plain_copy(&self) -> bool {
        !self.data.is_empty()
    }

    /// Bytes of one row (the loader checked that rows are whole blocks).
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_size() * self.ty.type_size()
    }

    /// Row `r` as f32 (used for embedding lookups and norm weights).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        let row_bytes = self.row_bytes();
        let row = &self.data[r * row_bytes..(r + 1) * row_bytes];
        Ok(agentc_kernels::dequantize_row(self.ty, row, out)?)
    }

    /// The whole tensor as f32 (for small vectors such as norm weights).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row)?;
        }
        Ok(out)
    }
}

/// The weights of one transformer block.
#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: QuantTensor,
    pub wk: QuantTensor,
    pub wv: QuantTensor,
    /// qwen2 adds biases to the Q, K and V projections.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub wo: QuantTensor,
    pub ffn_norm: Vec<f32>,
    pub w_gate: QuantTensor,
    pub w_up: QuantTensor,
    pub w_down: QuantTensor,
    /// Q, K and V stacked by rows for one kernel call (when their types match).
    pub qkv: Option<PackedMatrix>,
    /// The FFN gate and up projections stacked by rows.
    pub gate_up: Option<PackedMatrix>,
}

/// All weights of a llama-style model.
#[derive(Debug)]
pub struct LlamaWeights {
    pub token_embedding: QuantTensor,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// `None` when the output projection is tied to the token embedding.
    pub output: Option<QuantTensor>,
}

impl LlamaWeights {
    pub fn load(gguf: &GgufFile, config: &LlamaConfig) -> Result<Self> {
        let (embd, kv, ff, vocab) = (
            config.n_embd,
            config.kv_dim(),
            config.n_ff,
            config.vocab_size,
        );
        let vector = |name: &str, len: usize| QuantTensor::load(gguf, name, len, 1)?.to_f32();
        let optional_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
            match gguf.tensor_info(name) {
                Some(_) => vector(name, len).map(Some),
                None => Ok(None),
            }
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let name = |part: &str| format!("blk.{i}.{part}");
            layers.push(LayerWeights {
                attn_norm: vector(&name("attn_norm.weight"), embd)?,
                wq: QuantTensor::load(gguf, &name("attn_q.weight"), embd, embd)?,
                wk: QuantTensor::load(gguf, &name("attn_k.weight"), embd, kv)?,
                wv: QuantTensor::load(gguf, &name("attn_v.weight"), embd, kv)?,
                bq: optional_vector(&name("attn_q.bias"), embd)?,
                bk: optional_vector(&name("attn_k.bias"), kv)?,
                bv: optional_vector(&name("attn_v.bias"), kv)?,
                wo: QuantTensor::load(gguf, &name("attn_output.weight"), embd, embd)?,
                ffn_norm: vector(&name("ffn_norm.weight"), embd)?,
                w_gate: QuantTensor::load(gguf, &name("ffn_gate.weight"), embd, ff)?,
                w_up: QuantTensor::load(gguf, &name("ffn_up.weight"), embd, ff)?,
                w_down: QuantTensor::load(gguf, &name("ffn_down.weight"), ff, embd)?,
                qkv: None,
                gate_up: None,
            });
        }
        let output = match gguf.tensor_info("output.weight") {
            Some(_) => Some(QuantTensor::load(gguf, "output.weight", embd, vocab)?),
            None => None,
        };
        Ok(Self {
            token_embedding: QuantTensor::load(gguf, "token_embd.weight", embd, vocab)?,
            layers,
            output_norm: vector("output_norm.weight", embd)?,
            output,
        })
    }

    /// Packs every matrix used in a matmul for `agentc-kernels` and drops the plain copies that
    /// only matmuls read. The token embedding keeps its plain rows for lookups (and is packed
    /// too when it doubles as the output projection).
    pub fn pack_for_kernels(&mut self) -> Result<()> {
        for layer in &mut self.layers {
            // Matrices sharing an input are stacked, so one call (one pass of the thread pool,
            // one quantization of the activations) computes them all.
            layer.qkv = stack(&[&layer.wq, &layer.wk, &layer.wv])?;
            layer.gate_up = stack(&[&layer.w_gate, &layer.w_up])?;
            let mut matrices = vec![&mut layer.wo, &mut layer.w_down];
            if layer.qkv.is_none() {
                matrices.extend([&mut layer.wq, &mut layer.wk, &mut layer.wv]);
            }
            if layer.gate_up.is_none() {
                matrices.extend([&mut layer.w_gate, &mut layer.w_up]);
            }
            for matrix in matrices {
                matrix.pack()?;
            }
            for matrix in [
                &mut layer.wq,
                &mut layer.wk,
                &mut layer.wv,
                &mut layer.wo,
                &mut layer.w_gate,
                &mut layer.w_up,
                &mut layer.w_down,
            ] {
                matrix.release_plain_copy();
            }
        }
        match &mut self.output {
            Some(output) => {
                output.pack()?;
                output.release_plain_copy();
                Ok(())
            }
            None => self.token_embedding.pack(),
        }
    }

    /// The matrix that turns the final hidden state into logits.
    pub fn output_projection(&self) -> &QuantTensor {
        self.output.as_ref().unwrap_or(&self.token_embedding)
    }
}

/// `parts` packed as one matrix stacked by rows, or `None` when their types differ (then each
/// is packed on its own).
fn stack(parts: &[&QuantTensor]) -> Result<Option<PackedMatrix>> {
    let mut matrices = Vec::with_capacity(parts.len());
    for part in parts {
        if part.ty != parts[0].ty {
            return Ok(None);
        }
        matrices.push(part.matrix()?);
    }
    Ok(Some(PackedMatrix::pack_stacked(&matrices)?))
}
