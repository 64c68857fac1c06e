//! ggml tensor element types: ids as stored in GGUF, block geometry, and which ones agentc reads.

/// A ggml tensor type. Every type llama.cpp writes is listed so that byte sizes, and therefore
/// bounds checks, are right even for tensors agentc cannot compute with yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq3Xxs,
    Iq1S,
    Iq4Nl,
    Iq3S,
    Iq2S,
    Iq4Xs,
    I8,
    I16,
    I32,
    I64,
    F64,
    Iq1M,
    Bf16,
}

/// Elements per block of the k-quant and most i-quant types.
const SUPER_BLOCK: usize = 256;
/// Elements per block of the classic quant types.
const BLOCK: usize = 32;

impl GgmlType {
    /// The type with ggml id `id` (`enum ggml_type` in ggml.h), if it is one this table knows.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            16 => Iq2Xxs,
            17 => Iq2Xs,
            18 => Iq3Xxs,
            19 => Iq1S,
            20 => Iq4Nl,
            21 => Iq3S,
            22 => Iq2S,
            23 => Iq4Xs,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => Iq1M,
            30 => Bf16,
            _ => return None,
        })
    }

    /// The name llama.cpp prints for this type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            Iq2Xxs => "IQ2_XXS",
            Iq2Xs => "IQ2_XS",
            Iq3Xxs => "IQ3_XXS",
            Iq1S => "IQ1_S",
            Iq4Nl => "IQ4_NL",
            Iq3S => "IQ3_S",
            Iq2S => "IQ2_S",
            Iq4Xs => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            Iq1M => "IQ1_M",
            Bf16 => "BF16",
        }
    }

    /// (elements per block, bytes per block), from ggml's `type_traits` table.
    pub fn block_geometry(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 => (1, 2),
            Q4_0 => (BLOCK, 18),
            Q4_1 => (BLOCK, 20),
            Q5_0 => (BLOCK, 22),
            Q5_1 => (BLOCK, 24),
            Q8_0 => (BLOCK, 34),
            Q8_1 => (BLOCK, 36),
            Q2K => (SUPER_BLOCK, 84),
            Q3K => (SUPER_BLOCK, 110),
            Q4K => (SUPER_BLOCK, 144),
            Q5K => (SUPER_BLOCK, 176),
            Q6K => (SUPER_BLOCK, 210),
            Q8K => (SUPER_BLOCK, 292),
            Iq2Xxs => (SUPER_BLOCK, 66),
            Iq2Xs => (SUPER_BLOCK, 74),
            Iq3Xxs => (SUPER_BLOCK, 98),
            Iq1S => (SUPER_BLOCK, 50),
            Iq4Nl => (BLOCK, 18),
            Iq3S => (SUPER_BLOCK, 110),
            Iq2S => (SUPER_BLOCK, 82),
            Iq4Xs => (SUPER_BLOCK, 136),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 => (1, 8),
            F64 => (1, 8),
            Iq1M => (SUPER_BLOCK, 56),
            Bf16 => (1, 2),
        }
    }

    /// Whether agentc can dequantize and multiply with tensors of this type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            GgmlType::F32 | GgmlType::F16 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0
        )
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_names() {
        for id in 0..40 {
            if let Some(ty) = GgmlType::from_id(id) {
                assert!(!ty.name().is_empty());
                let (elements, bytes) = ty.block_geometry();
                assert!(elements > 0 && bytes > 0);
            }
        }
        assert_eq!(GgmlType::from_id(3), Some(GgmlType::Q4_1));
        assert_eq!(
            GgmlType::from_id(4),
            None,
            "id 4 (Q4_2) was removed from ggml"
        );
    }

    #[test]
    fn classic_quant_blocks_match_ggml() {
        assert_eq!(GgmlType::Q4_0.block_geometry(), (32, 18));
        assert_eq!(GgmlType::Q4_1.block_geometry(), (32, 20));
        assert_eq!(GgmlType::Q8_0.block_geometry(), (32, 34));
    }
}
