//! How webhook bodies are stored: as received, or LZ4-compressed.
//!
//! Bodies are most of what the inbox writes, and on SQLite writing them is
//! what bounds ingest: a GitHub push is ~9 KB of JSON that LZ4 shrinks about
//! fourfold for a few microseconds of CPU. Compression runs in the request
//! handler, in parallel, before the group commit; decoding gives back the
//! exact bytes received, so verification and replay are unaffected.

use bytes::Bytes;

/// Bodies smaller than this are stored as they are: too small to gain.
const COMPRESS_FROM: usize = 1024;

/// The `body_encoding` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Identity,
    Lz4,
}

impl BodyEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyEncoding::Identity => "identity",
            BodyEncoding::Lz4 => "lz4",
        }
    }
}

/// A body as written to the database.
#[derive(Debug, Clone)]
pub struct StoredBody {
    pub encoding: BodyEncoding,
    pub bytes: Bytes,
}

/// Why a stored body could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("unknown body encoding {0:?}")]
    UnknownEncoding(String),
    #[error("stored body is not valid LZ4: {0}")]
    Corrupt(#[from] lz4_flex::block::DecompressError),
}

/// Encodes a received body for storage, compressing it when that helps.
pub fn encode(raw: &Bytes) -> StoredBody {
    if raw.len() >= COMPRESS_FROM {
        let compressed = lz4_flex::compress_prepend_size(raw);
        if compressed.len() < raw.len() {
            return StoredBody {
                encoding: BodyEncoding::Lz4,
                bytes: Bytes::from(compressed),
            };
        }
    }
    StoredBody {
        encoding: BodyEncoding::Identity,
        bytes: raw.clone(),
    }
}

/// The exact bytes that were received.
pub fn decode(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, BodyError> {
    match encoding {
        "identity" => Ok(stored),
        "lz4" => Ok(lz4_flex::decompress_size_prepended(&stored)?),
        other => Err(BodyError::UnknownEncoding(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_json_is_compressed_and_comes_back_byte_for_byte() {
        let raw = Bytes::from(include_bytes!("../../fixtures/github/push.json").to_vec());
        let stored = encode(&raw);
        assert_eq!(stored.encoding, BodyEncoding::Lz4);
        assert!(
            stored.bytes.len() * 2 < raw.len(),
            "{} bytes",
            stored.bytes.len()
        );
        assert_eq!(decode("lz4", stored.bytes.to_vec()).unwrap(), raw.to_vec());
    }

    #[test]
    fn small_or_incompressible_bodies_are_stored_as_received() {
        let small = Bytes::from_static(br#"{"zen":"Keep it logically awesome."}"#);
        assert_eq!(encode(&small).encoding, BodyEncoding::Identity);
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let noise = Bytes::from(noise);
        let stored = encode(&noise);
        assert_eq!(
            decode(stored.encoding.as_str(), stored.bytes.to_vec()).unwrap(),
            noise.to_vec()
        );
    }

    #[test]
    fn corrupt_or_unknown_encodings_are_errors() {
        assert!(decode("lz4", vec![0xff; 8]).is_err());
        assert!(decode("zstd", vec![]).is_err());
    }
}
