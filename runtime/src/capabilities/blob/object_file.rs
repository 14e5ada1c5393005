//! How the Disk-seam store lays an object out in one file: the data
//! first (so it is written in one pass, streamed or assembled from parts),
//! then a header describing it, then a fixed trailer that finds the
//! header:
//!
//! ```text
//! [data][header (postcard)][header length: u32 LE][header digest: 8][magic: 8]
//! ```
//!
//! The header holds the object's path, size, modification time, ETag,
//! attributes and the SHA-256 of its data. The header's own digest (the
//! first 8 bytes of its SHA-256) catches a damaged header; the data digest
//! is checked by every read of a whole object (a range read cannot check
//! it without reading everything, and does not).

use object_store::{Attribute, AttributeValue, Attributes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

pub(crate) const MAGIC: &[u8; 8] = b"PSBLOB01";
/// Header length, digest and magic.
pub(crate) const TRAILER_LEN: u64 = 4 + 8 + 8;
/// Largest header accepted (a path, a few attributes): bounds what a
/// damaged length field can make a reader allocate.
pub(crate) const HEADER_BYTES_MAX: usize = 64 * 1024;

/// What the header says about an object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Since the Unix epoch.
    pub(crate) modified: Duration,
    pub(crate) e_tag: String,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) sha256: [u8; 32],
}

impl Header {
    pub(crate) fn modified_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + self.modified
    }
}

/// The header and trailer that follow the data.
pub(crate) fn encode_tail(header: &Header) -> Result<Vec<u8>, String> {
    let mut tail = postcard::to_allocvec(header).map_err(|e| format!("encoding a header: {e}"))?;
    if tail.len() > HEADER_BYTES_MAX {
        return Err(format!(
            "a header of {} bytes (at most {HEADER_BYTES_MAX}): path or attributes too long",
            tail.len()
        ));
    }
    let digest = header_digest(&tail);
    let len = u32::try_from(tail.len()).map_err(|_| "header too long".to_string())?;
    tail.extend_from_slice(&len.to_le_bytes());
    tail.extend_from_slice(&digest);
    tail.extend_from_slice(MAGIC);
    Ok(tail)
}

fn header_digest(header: &[u8]) -> [u8; 8] {
    let full = Sha256::digest(header);
    let mut digest = [0; 8];
    digest.copy_from_slice(&full[..8]);
    digest
}

/// The header's length, from a file's last [`TRAILER_LEN`] bytes, and
/// the digest it must have; or why the trailer is damaged.
pub(crate) fn parse_trailer(trailer: &[u8]) -> Result<(usize, [u8; 8]), String> {
    if trailer.len() != TRAILER_LEN as usize || &trailer[12..20] != MAGIC {
        return Err("not an object file (bad trailer)".into());
    }
    let len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
    if len > HEADER_BYTES_MAX {
        return Err(format!("a header length of {len} (damaged)"));
    }
    Ok((len, trailer[4..12].try_into().expect("8 bytes")))
}

/// The header from its bytes, checked against its digest and the file's
/// length.
pub(crate) fn decode_header(
    bytes: &[u8],
    digest: [u8; 8],
    file_len: u64,
) -> Result<Header, String> {
    if header_digest(bytes) != digest {
        return Err("header digest mismatch (damaged)".into());
    }
    let header: Header =
        postcard::from_bytes(bytes).map_err(|e| format!("header unreadable: {e}"))?;
    if header.size + bytes.len() as u64 + TRAILER_LEN != file_len {
        return Err(format!(
            "a header saying {} bytes of data in a file of {file_len} (damaged)",
            header.size
        ));
    }
    Ok(header)
}

/// Attributes as stored (names are HTTP's, user metadata prefixed `meta:`).
pub(crate) fn attributes_to_pairs(attributes: &Attributes) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|(key, value)| {
            let name = match key {
                Attribute::ContentDisposition => "content-disposition".to_string(),
                Attribute::ContentEncoding => "content-encoding".to_string(),
                Attribute::ContentLanguage => "content-language".to_string(),
                Attribute::ContentType => "content-type".to_string(),
                Attribute::CacheControl => "cache-control".to_string(),
                Attribute::StorageClass => "storage-class".to_string(),
                Attribute::Metadata(name) => format!("meta:{name}"),
                // A kind added by a later object_store: kept by its
                // debug name, so it round-trips as metadata at worst.
                other => format!("meta:{other:?}"),
            };
            (name, value.to_string())
        })
        .collect()
}

pub(crate) fn pairs_to_attributes(pairs: &[(String, String)]) -> Attributes {
    let mut attributes = Attributes::new();
    for (name, value) in pairs {
        let key = match name.as_str() {
            "content-disposition" => Attribute::ContentDisposition,
            "content-encoding" => Attribute::ContentEncoding,
            "content-language" => Attribute::ContentLanguage,
            "content-type" => Attribute::ContentType,
            "cache-control" => Attribute::CacheControl,
            "storage-class" => Attribute::StorageClass,
            other => Attribute::Metadata(Cow::Owned(
                other.strip_prefix("meta:").unwrap_or(other).to_string(),
            )),
        };
        attributes.insert(key, AttributeValue::from(value.clone()));
    }
    attributes
}

/// The file name an object path is stored under: the path escaped
/// (reversibly, order-preserving for prefixes) when short enough for a
/// file system, otherwise its hash (the path is then read from the
/// header).
pub(crate) fn file_name(path: &str) -> String {
    let mut name = String::with_capacity(path.len() + 2);
    name.push_str("o-");
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.len() <= 240 {
        return name;
    }
    let digest = Sha256::digest(path.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("h-{hex}")
}

/// The path an `o-` file name stands for (`None`: not one).
pub(crate) fn path_of(name: &str) -> Option<String> {
    let escaped = name.strip_prefix("o-")?;
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut chars = escaped.bytes();
    while let Some(byte) = chars.next() {
        if byte == b'%' {
            let hi = (chars.next()? as char).to_digit(16)?;
            let lo = (chars.next()? as char).to_digit(16)?;
            bytes.push((hi * 16 + lo) as u8);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok()
}

/// The object file's header (`encoded_types`).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encoded_types(v: &mut impl crate::codec::EncodedTypes) {
    v.visit("BlobObjectHeader", || {
        vec![Header {
            path: "acme/receipts/2026/r1".into(),
            size: 11,
            modified: Duration::new(1_800_000_000, 5),
            e_tag: "00000000000000ff".into(),
            attributes: vec![("content-type".into(), "text/plain".into())],
            sha256: [3; 32],
        }]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_long_paths_are_hashed() {
        for path in ["a", "a/b/c.txt", "with space/%25/\u{e9}/x", "dots/../x"] {
            let name = file_name(path);
            plexspaces_storage::disk::validate_name(&name).unwrap();
            assert_eq!(path_of(&name).as_deref(), Some(path));
        }
        let long = "x/".repeat(200);
        let name = file_name(&long);
        assert!(name.starts_with("h-") && name.len() == 66);
        assert_eq!(path_of(&name), None);
    }

    /// Reads `file` as the store does; what it makes of arbitrary bytes.
    fn read_as_store(file: &[u8]) -> Result<Header, String> {
        let trailer_at = file
            .len()
            .checked_sub(TRAILER_LEN as usize)
            .ok_or_else(|| "shorter than a trailer".to_string())?;
        let (len, digest) = parse_trailer(&file[trailer_at..])?;
        let header_at = trailer_at
            .checked_sub(len)
            .ok_or_else(|| "header longer than the file".to_string())?;
        decode_header(&file[header_at..trailer_at], digest, file.len() as u64)
    }

    proptest::proptest! {
        /// Any bytes, and any bytes ending in a valid-looking trailer: an
        /// error or a header that agrees with the file's length, never a
        /// panic.
        #[test]
        fn arbitrary_files_are_refused_or_consistent(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            len in 0u32..400,
            digest in proptest::array::uniform8(proptest::num::u8::ANY),
        ) {
            if let Ok(header) = read_as_store(&body) {
                proptest::prop_assert!(header.size <= body.len() as u64);
            }
            let mut file = body.clone();
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&digest);
            file.extend_from_slice(MAGIC);
            if let Ok(header) = read_as_store(&file) {
                proptest::prop_assert!(header.size <= file.len() as u64);
            }
        }
    }

    #[test]
    fn a_damaged_header_or_trailer_is_refused() {
        let header = Header {
            path: "a".into(),
            size: 3,
            modified: Duration::from_secs(5),
            e_tag: "e".into(),
            attributes: vec![("content-type".into(), "text/plain".into())],
            sha256: [7; 32],
        };
        // A whole file as the store reads it: data, then the tail.
        let mut file = b"abc".to_vec();
        file.extend(encode_tail(&header).unwrap());
        let read = |file: &[u8]| {
            let file_len = file.len() as u64;
            let trailer_at = file.len() - TRAILER_LEN as usize;
            let (len, digest) = parse_trailer(&file[trailer_at..])?;
            let header_at = trailer_at
                .checked_sub(len)
                .ok_or_else(|| "header longer than the file".to_string())?;
            decode_header(&file[header_at..trailer_at], digest, file_len)
        };
        assert_eq!(read(&file).unwrap(), header);
        for flip in 3..file.len() {
            let mut damaged = file.clone();
            damaged[flip] ^= 0x10;
            assert!(
                read(&damaged).is_err(),
                "a flipped byte at {flip} went unnoticed"
            );
        }
        let (len, digest) = parse_trailer(&file[file.len() - TRAILER_LEN as usize..]).unwrap();
        let header_at = file.len() - TRAILER_LEN as usize - len;
        let bytes = &file[header_at..header_at + len];
        assert!(decode_header(bytes, digest, file.len() as u64 + 1).is_err());
    }
}
