//! Streaming SHA-256 with the Parquet footer kept on the side.
//!
//! Every byte shardsync reads from a store goes through a [`StreamHasher`] once: it is hashed
//! while it flows, and the last bytes are kept so the Parquet footer can be decoded without a
//! second read (a footer larger than [`TAIL_KEEP`] costs one ranged read of just the footer).

use std::collections::VecDeque;

use arrow::datatypes::{DataType, Field};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// How many trailing bytes the hasher keeps for the footer.
pub const TAIL_KEEP: usize = 1024 * 1024;
pub use crate::footer::parse_footer;
use crate::footer::{FOOTER_LEN, MAGIC};

/// Hashes a byte stream and keeps its head magic and its tail.
#[derive(Debug)]
pub struct StreamHasher {
    sha: Sha256,
    len: u64,
    head: Vec<u8>,
    tail: VecDeque<Bytes>,
    tail_len: usize,
}

impl Default for StreamHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        StreamHasher {
            sha: Sha256::new(),
            len: 0,
            head: Vec::with_capacity(4),
            tail: VecDeque::new(),
            tail_len: 0,
        }
    }

    /// Feed the next chunk. Chunks are reference-counted, so keeping the tail copies nothing.
    pub fn update(&mut self, chunk: &Bytes) {
        self.sha.update(chunk);
        self.len += chunk.len() as u64;
        if self.head.len() < 4 {
            let need = 4 - self.head.len();
            self.head.extend_from_slice(&chunk[..need.min(chunk.len())]);
        }
        self.tail.push_back(chunk.clone());
        self.tail_len += chunk.len();
        while let Some(front) = self.tail.front() {
            if self.tail_len - front.len() >= TAIL_KEEP {
                self.tail_len -= front.len();
                self.tail.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finish: the SHA-256 (lowercase hex), the length, the first 4 bytes and the kept tail.
    pub fn finish(self) -> Hashed {
        let mut tail = Vec::with_capacity(self.tail_len);
        for c in &self.tail {
            tail.extend_from_slice(c);
        }
        Hashed {
            sha256: hex::encode(self.sha.finalize()),
            size: self.len,
            head: self.head,
            tail,
        }
    }
}

/// The result of hashing a stream.
pub struct Hashed {
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Bytes hashed.
    pub size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// What a Parquet footer tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetFacts {
    /// Rows in the file.
    pub rows: u64,
    /// Row groups in the file.
    pub row_groups: u64,
    /// The Arrow schema, as a canonical string.
    pub schema: String,
}

impl std::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashed")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish()
    }
}

/// Outcome of reading the footer from the kept tail.
#[derive(Debug)]
pub enum Footer {
    /// Decoded: the file's facts.
    Parsed(ParquetFacts),
    /// The footer is larger than the kept tail: read `range` of the object and call [`parse_footer`].
    NeedRange(std::ops::Range<u64>),
}

impl Hashed {
    /// Decode the Parquet footer from the kept tail. `Err` says why the object has no footer
    /// facts (it becomes the entry's `parquet_error`).
    pub fn parquet(&self) -> Result<Footer, String> {
        let meta_len = crate::footer::meta_len(&self.tail, self.size)?;
        if self.head.as_slice() != MAGIC {
            return Err("missing PAR1 magic at the start (not a Parquet file)".into());
        }
        let total = meta_len + FOOTER_LEN;
        if total > self.tail.len() {
            return Ok(Footer::NeedRange(self.size - total as u64..self.size));
        }
        parse_footer(&self.tail[self.tail.len() - total..]).map(Footer::Parsed)
    }
}

/// `sha256:` + 16 hex digits over a canonical rendering of the fields (name, type, nullability),
/// ignoring field and schema metadata, which writers fill with incidental details.
pub fn schema_fingerprint<'a>(fields: impl Iterator<Item = &'a Field>) -> String {
    let mut s = String::new();
    for f in fields {
        render_field(f, &mut s);
        s.push(';');
    }
    let h = Sha256::digest(s.as_bytes());
    format!("sha256:{}", &hex::encode(h)[..16])
}

fn render_field(f: &Field, out: &mut String) {
    out.push_str(f.name());
    out.push(':');
    render_type(f.data_type(), out);
    if f.is_nullable() {
        out.push('?');
    }
}

fn render_type(t: &DataType, out: &mut String) {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
            out.push_str("list<");
            render_field(f, out);
            out.push('>');
        }
        DataType::FixedSizeList(f, n) => {
            out.push_str(&format!("fixed_list[{n}]<"));
            render_field(f, out);
            out.push('>');
        }
        DataType::Struct(fields) => {
            out.push_str("struct<");
            for f in fields {
                render_field(f, out);
                out.push(',');
            }
            out.push('>');
        }
        DataType::Map(f, sorted) => {
            out.push_str(if *sorted { "map_sorted<" } else { "map<" });
            render_field(f, out);
            out.push('>');
        }
        // String/binary views and their large variants hold the same logical data.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => out.push_str("utf8"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => out.push_str("binary"),
        DataType::Dictionary(_, v) => render_type(v, out),
        other => out.push_str(&format!("{other:?}")),
    }
}

/// Hash a byte slice (tests and small objects).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
