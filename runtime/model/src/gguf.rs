//! GGUF files (versions 2 and 3) read over a memory map.
//!
//! Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
//! key/value pairs, the tensor infos (name, dims, type, offset), padding to `general.alignment`,
//! then the tensor data. Every length and offset is checked against the file before it is used.

mod cursor;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// ggml tensor types live with the kernels that read them; the loader re-exports them.
pub use agentc_kernels::GgmlType;
pub use value::{MetadataLookup, MetadataValue};

use crate::error::{Error, Result};
use cursor::Cursor;

const MAGIC: &[u8; 4] = b"GGUF";
const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];
/// `general.alignment` when the file does not set it (GGUF_DEFAULT_ALIGNMENT).
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions (GGML_MAX_DIMS).
const MAX_DIMS: usize = 4;
const ALIGNMENT_KEY: &str = "general.alignment";

/// Where one tensor lives in the file and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous one (the row length of a matrix).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute byte range of the tensor's data in the file.
    pub data_start: u64,
    pub data_len: u64,
}

impl TensorInfo {
    pub fn element_count(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Rows of a matrix viewed as `[rows, row_len]`: every dimension after the first.
    pub fn row_count(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// An open GGUF file: parsed header, metadata and tensor table, and the mapped bytes.
pub struct GgufFile {
    path: PathBuf,
    mmap: Mmap,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` and parses its header, metadata and tensor table.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io_error = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_error)?;
        // SAFETY: the map is read-only and lives as long as `GgufFile`. Model files are not
        // expected to change while loaded; if another process truncates the file anyway, reads
        // may fault, as with every memory-mapped model loader (llama.cpp included).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_error)?;
        Self::parse(path, mmap)
    }

    fn parse(path: PathBuf, mmap: Mmap) -> Result<Self> {
        let mut cursor = Cursor::new(&path, &mmap);
        let magic = cursor.take(4, || "the magic bytes".to_owned())?;
        if magic != MAGIC {
            return Err(Error::BadMagic {
                path: path.clone(),
                found: magic.to_vec(),
            });
        }
        let version = cursor.u32(|| "the version".to_owned())?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: path.clone(),
                version,
            });
        }
        // A tensor info is at least a name length, a dim count, a type and an offset.
        const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 4 + 8;
        // A key/value pair is at least a key length and a value type.
        const MIN_METADATA_BYTES: usize = 8 + 4;
        let tensor_count =
            cursor.length(MIN_TENSOR_INFO_BYTES, || "the tensor count".to_owned())?;
        let metadata_count =
            cursor.length(MIN_METADATA_BYTES, || "the metadata count".to_owned())?;

        let metadata = read_metadata(&mut cursor, metadata_count)?;
        let alignment = match metadata.get(ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some(value) => match value.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(Error::Corrupt {
                        path: path.clone(),
                        what: format!("{ALIGNMENT_KEY} is {value:?}, expected a power of two"),
                    });
                }
            },
        };

        let raw_tensors = read_tensor_infos(&mut cursor, tensor_count)?;
        let file_len = mmap.len() as u64;
        let data_offset = (cursor.position() as u64).next_multiple_of(alignment);
        let mut tensors = Vec::with_capacity(raw_tensors.len());
        let mut tensor_index = HashMap::with_capacity(raw_tensors.len());
        for raw in raw_tensors {
            let info = raw.locate(&path, data_offset, alignment, file_len)?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    what: format!("tensor {} is listed twice", info.name),
                });
            }
            tensors.push(info);
        }
        Ok(Self {
            path,
            mmap,
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
            tensor_index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn metadata(&self) -> &BTreeMap<String, MetadataValue> {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of tensor `name`, if its type is one agentc can compute with.
    pub fn tensor_data(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| Error::MissingTensor(name.to_owned()))?;
        if !info.ggml_type.is_supported() {
            return Err(Error::UnsupportedTensorType {
                tensor: name.to_owned(),
                type_name: info.ggml_type.name(),
            });
        }
        // Both ends were checked against the file length when the file was opened.
        let start = info.data_start as usize;
        let end = start + info.data_len as usize;
        Ok((info, &self.mmap[start..end]))
    }
}

impl MetadataLookup for GgufFile {
    fn value(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }
}

fn read_metadata(cursor: &mut Cursor<'_>, count: usize) -> Result<BTreeMap<String, MetadataValue>> {
    let mut metadata = BTreeMap::new();
    for index in 0..count {
        let key = cursor.string(|| format!("key of metadata entry {index}"))?;
        let type_id = cursor.u32(|| format!("value type of metadata key {key:?}"))?;
        let value = MetadataValue::read(cursor, type_id, &key)?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}

/// A tensor info as read, before its offset is checked and made absolute.
struct RawTensorInfo {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    relative_offset: u64,
}

fn read_tensor_infos(cursor: &mut Cursor<'_>, count: usize) -> Result<Vec<RawTensorInfo>> {
    let mut tensors = Vec::with_capacity(count);
    for index in 0..count {
        let name = cursor.string(|| format!("name of tensor {index}"))?;
        let dim_count = cursor.u32(|| format!("dimension count of tensor {name}"))? as usize;
        if dim_count == 0 || dim_count > MAX_DIMS {
            return Err(Error::Corrupt {
                path: cursor.path().to_path_buf(),
                what: format!("tensor {name} has {dim_count} dimensions, expected 1 to {MAX_DIMS}"),
            });
        }
        let mut dims = Vec::with_capacity(dim_count);
        for axis in 0..dim_count {
            dims.push(cursor.u64(|| format!("dimension {axis} of tensor {name}"))?);
        }
        let type_id = cursor.u32(|| format!("type of tensor {name}"))?;
        let relative_offset = cursor.u64(|| format!("data offset of tensor {name}"))?;
        tensors.push(RawTensorInfo {
            name,
            dims,
            type_id,
            relative_offset,
        });
    }
    Ok(tensors)
}

impl RawTensorInfo {
    fn locate(
        self,
        path: &Path,
        data_offset: u64,
        alignment: u64,
        file_len: u64,
    ) -> Result<TensorInfo> {
        let corrupt = |what: String| Error::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let ggml_type =
            GgmlType::from_id(self.type_id).ok_or_else(|| Error::UnknownTensorType {
                path: path.to_path_buf(),
                tensor: self.name.clone(),
                type_id: self.type_id,
            })?;
        let (block_elements, block_bytes) = ggml_type.block_geometry();
        let row_len = self.dims[0];
        if !row_len.is_multiple_of(block_elements as u64) {
            return Err(corrupt(format!(
                "tensor {} has rows of {row_len} elements, not a multiple of the {ggml_type} block size {block_elements}",
                self.name
            )));
        }
        if !self.relative_offset.is_multiple_of(alignment) {
            return Err(corrupt(format!(
                "tensor {} starts at data offset {}, not a multiple of the alignment {alignment}",
                self.name, self.relative_offset
            )));
        }
        let element_count = self
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                corrupt(format!(
                    "tensor {} has dimensions {:?} whose product overflows",
                    self.name, self.dims
                ))
            })?;
        let data_len = (element_count / block_elements as u64)
            .checked_mul(block_bytes as u64)
            .ok_or_else(|| corrupt(format!("tensor {} is too large", self.name)))?;
        let data_start = data_offset
            .checked_add(self.relative_offset)
            .ok_or_else(|| {
                corrupt(format!(
                    "tensor {} has offset {} that overflows",
                    self.name, self.relative_offset
                ))
            })?;
        let data_end = data_start.checked_add(data_len);
        match data_end {
            Some(end) if end <= file_len => Ok(TensorInfo {
                name: self.name,
                dims: self.dims,
                ggml_type,
                data_start,
                data_len,
            }),
            _ => Err(Error::TensorOutOfBounds {
                path: path.to_path_buf(),
                tensor: self.name,
                start: data_start,
                end: data_end.unwrap_or(u64::MAX),
                file_len,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
