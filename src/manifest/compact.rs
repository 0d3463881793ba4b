//! The compact manifest: a small JSON head and a Parquet body, for datasets too large for one
//! JSON document to load quickly.
//!
//! ```text
//!   _shardsync/manifest.json                 head: format v2, dataset, digest, totals, body key
//!   _shardsync/manifests/<digest>-<id>.parquet   body: one row per path, sorted
//! ```
//!
//! The head is what the conditional commit swaps; the body is written first under a key no
//! other write uses, so a reader that follows a committed head finds a complete body. The body
//! stores each SHA-256 as 32 bytes, the directory part of each path dictionary-encoded and the
//! file name front-coded (`DELTA_BYTE_ARRAY`; rows are sorted), all zstd-compressed: about a
//! sixth of the JSON document. The head carries the digest; a body that does not hash to it is
//! refused, naming the body object.
//!
//! A row is a shard entry (`sha256` set), the source stat of `copied_from` for that path
//! (`src_stat` true), or both: the destination's entries and the stats they were copied from
//! share their paths, so they share rows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, FixedSizeBinaryBuilder, Int64Builder, RecordBatch,
    StringBuilder, StringDictionaryBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, UInt32Type, UInt64Type};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::{Manifest, ShardEntry, SourceStat};
use crate::error::{Error, Result};

/// The format tag of a compact manifest's head.
pub const FORMAT_COMPACT: &str = "shardsync.manifest/v2";
/// Manifests with at least this many entries are stored compact unless the dataset says
/// otherwise ([`crate::Dataset::compact_manifest_from`]). Below it the manifest stays one JSON
/// document a person can read; above it, parsing that document is most of a no-op sync.
pub const COMPACT_FROM_DEFAULT: usize = 10_000;
/// The environment variable that overrides [`COMPACT_FROM_DEFAULT`] for datasets opened from a
/// URL (`0`: always compact; a huge number: never).
pub const COMPACT_FROM_ENV: &str = "SHARDSYNC_COMPACT_MANIFEST_FROM";
/// The folder of compact manifest bodies, relative to the dataset root.
pub const BODY_DIR: &str = "_shardsync/manifests";
/// A body larger than this is refused before it is read (well above 10M entries).
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// A head's format tag is within its first bytes (only short fields sort before it).
const HEAD_TAG_WITHIN: usize = 64 * 1024;

const ROW_GROUP_ROWS: usize = 128 * 1024;
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The threshold for datasets opened from a URL: [`COMPACT_FROM_ENV`] if set, else the default.
pub fn compact_from_env() -> usize {
    std::env::var(COMPACT_FROM_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(COMPACT_FROM_DEFAULT)
}

/// Where a head's body is, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRef {
    /// The body's key relative to the dataset root (under [`BODY_DIR`]).
    pub key: String,
    /// The body's size in bytes.
    pub bytes: u64,
    /// Shard entries in the body.
    pub entries: u64,
}

/// A body as a stored head names it: the body, and the paths of it the head does not claim.
#[derive(Debug, Clone)]
pub(crate) struct StoredBody {
    pub(crate) body: BodyRef,
    pub(crate) retracted: Vec<String>,
}

/// A fresh, never reused body key for a manifest with this digest.
pub(crate) fn new_body_key(digest: &str) -> String {
    let short = digest.get(..16).unwrap_or(digest);
    format!("{BODY_DIR}/{short}-{:016x}.parquet", rand::random::<u64>())
}

/// Whether a key named by a head may be a body: under [`BODY_DIR`], no escape.
pub(crate) fn is_body_key(key: &str) -> bool {
    key.strip_prefix(BODY_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/') && name != "." && name != "..")
}

/// The head document of `m`, whose entries are in the body `body`.
pub fn encode_head(m: &Manifest, body: &BodyRef) -> Vec<u8> {
    encode_retracting_head(m, body, &[])
}

/// The head of `m` whose entries are those of `body` but the paths `retracted` (sorted): an
/// interim commit that stops claiming some entries writes this small document alone, over the
/// body already stored, not a second copy of the manifest.
pub fn encode_retracting_head(m: &Manifest, body: &BodyRef, retracted: &[String]) -> Vec<u8> {
    // Every field of the manifest but the entries and the stats (those are in the body); a
    // field added to `Manifest` must be added here too, or it is not stored.
    let shell = Manifest {
        format: FORMAT_COMPACT.to_string(),
        dataset: m.dataset.clone(),
        created_at: m.created_at,
        generator: m.generator.clone(),
        digest: m.digest.clone(),
        totals: m.totals.clone(),
        shards: Vec::new(),
        filter: m.filter.clone(),
        copied_from: m.copied_from.as_ref().map(|c| super::CopiedFrom {
            source: c.source.clone(),
            stats: Vec::new(),
        }),
    };
    let mut v = serde_json::to_value(&shell).expect("manifest head serializes");
    if let Some(o) = v.as_object_mut() {
        o.remove("shards");
        o.insert(
            "body".into(),
            serde_json::to_value(body).expect("body ref serializes"),
        );
        if !retracted.is_empty() {
            o.insert("retracted".into(), retracted.into());
        }
    }
    let mut out = serde_json::to_vec_pretty(&v).expect("manifest head serializes");
    out.push(b'\n');
    out
}

/// A parsed head: the manifest without its entries, and where they are.
#[derive(Debug, Clone)]
pub struct Head {
    /// Every field but the entries (and `copied_from`'s stats), as the head states them.
    pub manifest: Manifest,
    /// The body holding the entries.
    pub body: BodyRef,
    /// Paths of body entries this head does not claim (an interim commit's), sorted.
    pub retracted: Vec<String>,
}

/// Whether a manifest document is a compact head. Cheap for a large v1 document: its format
/// tag comes first, so a head's tag is looked for in the first bytes before anything is parsed.
pub fn is_head(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<serde_json::Value>,
    }
    let start = &bytes[..bytes.len().min(HEAD_TAG_WITHIN)];
    let tag = format!("\"{FORMAT_COMPACT}\"");
    start.windows(tag.len()).any(|w| w == tag.as_bytes())
        && serde_json::from_slice::<Probe>(bytes)
            .ok()
            .and_then(|p| p.format)
            .is_some_and(|f| f == FORMAT_COMPACT)
}

/// Parse a head document. `location` names it in errors.
pub fn decode_head(bytes: &[u8], location: &str) -> Result<Head> {
    let invalid = |reason: String| Error::InvalidManifest {
        location: location.to_string(),
        reason,
    };
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let o = v
        .as_object_mut()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    let body: BodyRef = serde_json::from_value(o.remove("body").unwrap_or_default())
        .map_err(|e| invalid(format!("\"body\": {e}")))?;
    if !is_body_key(&body.key) {
        return Err(invalid(format!(
            "body key {:?} is not under {BODY_DIR}/",
            super::truncate(&body.key, 200)
        )));
    }
    let retracted: Vec<String> = match o.remove("retracted") {
        Some(r) => serde_json::from_value(r).map_err(|e| invalid(format!("\"retracted\": {e}")))?,
        None => Vec::new(),
    };
    o.insert("format".into(), super::FORMAT.into());
    o.insert("shards".into(), serde_json::Value::Array(Vec::new()));
    let manifest: Manifest = serde_json::from_value(v).map_err(|e| invalid(e.to_string()))?;
    Ok(Head {
        manifest,
        body,
        retracted,
    })
}

fn body_schema() -> Arc<Schema> {
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("dir", dict.clone(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("sha256", DataType::FixedSizeBinary(32), true),
        Field::new("size", DataType::UInt64, false),
        Field::new("mtime_s", DataType::Int64, true),
        Field::new("mtime_ns", DataType::UInt32, true),
        Field::new("etag", DataType::Utf8, true),
        Field::new("rows", DataType::UInt64, true),
        Field::new("row_groups", DataType::UInt64, true),
        Field::new("schema", dict.clone(), true),
        Field::new("parquet_error", dict, true),
        Field::new("src_stat", DataType::Boolean, false),
        Field::new("src_mtime_s", DataType::Int64, true),
        Field::new("src_mtime_ns", DataType::UInt32, true),
        Field::new("src_etag", DataType::Utf8, true),
    ]))
}

fn writer_properties() -> WriterProperties {
    let col = |c: &str| ColumnPath::from(c);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::None)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    // Unique per row: a dictionary would only be abandoned halfway through each column chunk.
    for c in [
        "name",
        "sha256",
        "etag",
        "src_etag",
        "size",
        "mtime_s",
        "src_mtime_s",
    ] {
        b = b.set_column_dictionary_enabled(col(c), false);
    }
    // Sorted names share long prefixes with their neighbour: front coding stores each once.
    b = b.set_column_encoding(col("name"), Encoding::DELTA_BYTE_ARRAY);
    for c in ["size", "mtime_s", "src_mtime_s"] {
        b = b.set_column_encoding(col(c), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// Column builders of one row group.
struct Columns {
    dir: StringDictionaryBuilder<Int32Type>,
    name: StringBuilder,
    sha256: FixedSizeBinaryBuilder,
    size: UInt64Builder,
    mtime_s: Int64Builder,
    mtime_ns: UInt32Builder,
    etag: StringBuilder,
    rows: UInt64Builder,
    row_groups: UInt64Builder,
    schema: StringDictionaryBuilder<Int32Type>,
    parquet_error: StringDictionaryBuilder<Int32Type>,
    src_stat: BooleanBuilder,
    src_mtime_s: Int64Builder,
    src_mtime_ns: UInt32Builder,
    src_etag: StringBuilder,
    len: usize,
}

impl Columns {
    fn new() -> Columns {
        Columns {
            dir: StringDictionaryBuilder::new(),
            name: StringBuilder::new(),
            sha256: FixedSizeBinaryBuilder::new(32),
            size: UInt64Builder::new(),
            mtime_s: Int64Builder::new(),
            mtime_ns: UInt32Builder::new(),
            etag: StringBuilder::new(),
            rows: UInt64Builder::new(),
            row_groups: UInt64Builder::new(),
            schema: StringDictionaryBuilder::new(),
            parquet_error: StringDictionaryBuilder::new(),
            src_stat: BooleanBuilder::new(),
            src_mtime_s: Int64Builder::new(),
            src_mtime_ns: UInt32Builder::new(),
            src_etag: StringBuilder::new(),
            len: 0,
        }
    }

    fn push(&mut self, path: &str, entry: Option<&ShardEntry>, stat: Option<&SourceStat>) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        self.dir.append_value(dir);
        self.name.append_value(name);
        match entry {
            Some(e) => {
                let mut sha = [0u8; 32];
                // Entries were validated (64 lowercase hex digits) before they got here.
                let _ = hex::decode_to_slice(&e.sha256, &mut sha);
                self.sha256.append_value(sha).expect("32 bytes");
                self.size.append_value(e.size);
                push_time(&mut self.mtime_s, &mut self.mtime_ns, e.mtime);
                self.etag.append_option(e.etag.as_deref());
                self.rows.append_option(e.rows);
                self.row_groups.append_option(e.row_groups);
                self.schema.append_option(e.schema.as_deref());
                self.parquet_error.append_option(e.parquet_error.as_deref());
            }
            None => {
                self.sha256.append_null();
                self.size.append_value(0);
                push_time(&mut self.mtime_s, &mut self.mtime_ns, None);
                self.etag.append_null();
                self.rows.append_null();
                self.row_groups.append_null();
                self.schema.append_null();
                self.parquet_error.append_null();
            }
        }
        self.src_stat.append_value(stat.is_some());
        push_time(
            &mut self.src_mtime_s,
            &mut self.src_mtime_ns,
            stat.and_then(|s| s.mtime),
        );
        self.src_etag.append_option(stat.and_then(|s| s.etag.as_deref()));
        self.len += 1;
    }

    fn finish(&mut self) -> RecordBatch {
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.dir.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.sha256.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.mtime_s.finish()),
            Arc::new(self.mtime_ns.finish()),
            Arc::new(self.etag.finish()),
            Arc::new(self.rows.finish()),
            Arc::new(self.row_groups.finish()),
            Arc::new(self.schema.finish()),
            Arc::new(self.parquet_error.finish()),
            Arc::new(self.src_stat.finish()),
            Arc::new(self.src_mtime_s.finish()),
            Arc::new(self.src_mtime_ns.finish()),
            Arc::new(self.src_etag.finish()),
        ];
        RecordBatch::try_new(body_schema(), cols).expect("columns match the body schema")
    }
}

fn push_time(s: &mut Int64Builder, ns: &mut UInt32Builder, t: Option<DateTime<Utc>>) {
    s.append_option(t.map(|t| t.timestamp()));
    ns.append_option(t.map(|t| t.timestamp_subsec_nanos()));
}

/// The Parquet body of `m`: its entries and `copied_from`'s stats, one row per path.
pub fn encode_body(m: &Manifest) -> Result<Vec<u8>> {
    let parquet_err = |e: parquet::errors::ParquetError| Error::InvalidManifest {
        location: "compact manifest body".into(),
        reason: format!("could not encode: {e}"),
    };
    let mut out = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut out, body_schema(), Some(writer_properties())).map_err(parquet_err)?;
    let mut cols = Columns::new();
    let stats: &[SourceStat] = m.copied_from.as_ref().map_or(&[], |c| c.stats.as_slice());
    let (mut e, mut s) = (0, 0);
    while e < m.shards.len() || s < stats.len() {
        let entry = m.shards.get(e);
        let stat = stats.get(s);
        match (entry, stat) {
            (Some(en), Some(st)) if en.path == st.path => {
                cols.push(&en.path, Some(en), Some(st));
                (e, s) = (e + 1, s + 1);
            }
            (Some(en), Some(st)) if en.path < st.path => {
                cols.push(&en.path, Some(en), None);
                e += 1;
            }
            (Some(en), None) => {
                cols.push(&en.path, Some(en), None);
                e += 1;
            }
            (_, Some(st)) => {
                cols.push(&st.path, None, Some(st));
                s += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
        if cols.len == ROW_GROUP_ROWS {
            w.write(&cols.finish()).map_err(parquet_err)?;
        }
    }
    if cols.len > 0 || m.shards.is_empty() && stats.is_empty() {
        w.write(&cols.finish()).map_err(parquet_err)?;
    }
    w.close().map_err(parquet_err)?;
    Ok(out)
}

/// What a body holds: the entries and the source stats, each sorted by path as written.
#[derive(Debug, Default)]
pub struct Body {
    /// The shard entries.
    pub shards: Vec<ShardEntry>,
    /// `copied_from`'s stats.
    pub stats: Vec<SourceStat>,
}

/// Read a body. `location` names it in errors. Entries are not validated here (see
/// [`Manifest::from_compact`]).
pub fn decode_body(bytes: Bytes, location: &str) -> Result<Body> {
    let invalid = |reason: String| Error::InvalidManifest {
        location: location.to_string(),
        reason,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| invalid(format!("not a readable Parquet body: {e}")))?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| invalid(format!("not a readable Parquet body: {e}")))?;
    let mut body = Body::default();
    for batch in reader {
        let batch = batch.map_err(|e| invalid(format!("not a readable Parquet body: {e}")))?;
        decode_batch(&batch, &mut body).map_err(invalid)?;
    }
    Ok(body)
}

/// One record batch's rows into `body`; the error is the reason.
fn decode_batch(batch: &RecordBatch, body: &mut Body) -> std::result::Result<(), String> {
    let c = BatchColumns::of(batch)?;
    for i in 0..batch.num_rows() {
        let path = c.path(i);
        if c.src_stat.value(i) {
            body.stats.push(SourceStat {
                path: path.clone(),
                mtime: time_at(c.src_mtime_s, c.src_mtime_ns, i)?,
                etag: str_at(c.src_etag, i),
            });
        }
        if c.sha256.is_null(i) {
            continue;
        }
        body.shards.push(ShardEntry {
            path,
            size: c.size.value(i),
            sha256: lower_hex(c.sha256.value(i)),
            mtime: time_at(c.mtime_s, c.mtime_ns, i)?,
            etag: str_at(c.etag, i),
            rows: (!c.rows.is_null(i)).then(|| c.rows.value(i)),
            row_groups: (!c.row_groups.is_null(i)).then(|| c.row_groups.value(i)),
            schema: dict_at(c.schema, i),
            parquet_error: dict_at(c.parquet_error, i),
        });
    }
    Ok(())
}

/// A body's entries read batch by batch (64Ki rows at a time): memory holds
/// one batch, not the dataset, so two large manifests can be compared as streams
/// ([`crate::diff::diff_changes`]). Source stats are passed over.
pub struct BodyReader {
    batches: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    location: String,
    batch: std::vec::IntoIter<ShardEntry>,
    failed: bool,
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader")
            .field("location", &self.location)
            .finish()
    }
}

impl BodyReader {
    /// Open a body held in `source` (its bytes, or a local file). `location` names it in errors.
    pub fn new<R: parquet::file::reader::ChunkReader + 'static>(
        source: R,
        location: &str,
    ) -> Result<BodyReader> {
        let invalid = |e: parquet::errors::ParquetError| Error::InvalidManifest {
            location: location.to_string(),
            reason: format!("not a readable Parquet body: {e}"),
        };
        let batches = ParquetRecordBatchReaderBuilder::try_new(source)
            .map_err(invalid)?
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(invalid)?;
        Ok(BodyReader {
            batches,
            location: location.to_string(),
            batch: Vec::new().into_iter(),
            failed: false,
        })
    }
}

impl Iterator for BodyReader {
    type Item = Result<ShardEntry>;

    fn next(&mut self) -> Option<Result<ShardEntry>> {
        loop {
            if let Some(e) = self.batch.next() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            let invalid = |reason: String| Error::InvalidManifest {
                location: self.location.clone(),
                reason,
            };
            let batch = match self.batches.next()? {
                Ok(b) => b,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(invalid(format!("not a readable Parquet body: {e}"))));
                }
            };
            let mut body = Body::default();
            if let Err(reason) = decode_batch(&batch, &mut body) {
                self.failed = true;
                return Some(Err(invalid(reason)));
            }
            self.batch = body.shards.into_iter();
        }
    }
}

type Dict = arrow::array::DictionaryArray<Int32Type>;
type Prim<T> = arrow::array::PrimitiveArray<T>;

/// The typed columns of one batch.
struct BatchColumns<'a> {
    dir: &'a Dict,
    dir_values: &'a arrow::array::StringArray,
    name: &'a arrow::array::StringArray,
    sha256: &'a arrow::array::FixedSizeBinaryArray,
    size: &'a Prim<UInt64Type>,
    mtime_s: &'a Prim<Int64Type>,
    mtime_ns: &'a Prim<UInt32Type>,
    etag: &'a arrow::array::StringArray,
    rows: &'a Prim<UInt64Type>,
    row_groups: &'a Prim<UInt64Type>,
    schema: &'a Dict,
    parquet_error: &'a Dict,
    src_stat: &'a arrow::array::BooleanArray,
    src_mtime_s: &'a Prim<Int64Type>,
    src_mtime_ns: &'a Prim<UInt32Type>,
    src_etag: &'a arrow::array::StringArray,
}

impl<'a> BatchColumns<'a> {
    fn of(b: &'a RecordBatch) -> std::result::Result<BatchColumns<'a>, String> {
        let col = |n: &str| b.column_by_name(n).ok_or_else(|| format!("no column {n:?}"));
        let wrong = |n: &str| format!("column {n:?} has the wrong type");
        macro_rules! typed {
            ($n:literal, $as:ident $(::<$t:ty>)?) => {
                col($n)?.$as $(::<$t>)?().ok_or_else(|| wrong($n))?
            };
        }
        let dir = typed!("dir", as_dictionary_opt::<Int32Type>);
        Ok(BatchColumns {
            dir,
            dir_values: dir.values().as_string_opt::<i32>().ok_or_else(|| wrong("dir"))?,
            name: typed!("name", as_string_opt::<i32>),
            sha256: typed!("sha256", as_fixed_size_binary_opt),
            size: typed!("size", as_primitive_opt::<UInt64Type>),
            mtime_s: typed!("mtime_s", as_primitive_opt::<Int64Type>),
            mtime_ns: typed!("mtime_ns", as_primitive_opt::<UInt32Type>),
            etag: typed!("etag", as_string_opt::<i32>),
            rows: typed!("rows", as_primitive_opt::<UInt64Type>),
            row_groups: typed!("row_groups", as_primitive_opt::<UInt64Type>),
            schema: typed!("schema", as_dictionary_opt::<Int32Type>),
            parquet_error: typed!("parquet_error", as_dictionary_opt::<Int32Type>),
            src_stat: typed!("src_stat", as_boolean_opt),
            src_mtime_s: typed!("src_mtime_s", as_primitive_opt::<Int64Type>),
            src_mtime_ns: typed!("src_mtime_ns", as_primitive_opt::<UInt32Type>),
            src_etag: typed!("src_etag", as_string_opt::<i32>),
        })
    }

    fn path(&self, i: usize) -> String {
        let dir = self.dir_values.value(self.dir.keys().value(i) as usize);
        let name = self.name.value(i);
        if dir.is_empty() {
            return name.to_string();
        }
        let mut p = String::with_capacity(dir.len() + 1 + name.len());
        p.push_str(dir);
        p.push('/');
        p.push_str(name);
        p
    }
}

/// 32 bytes as 64 lowercase hex digits: by table, as `hex::encode`'s char iterator was a
/// tenth of a body's load time.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

fn str_at(a: &arrow::array::StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

fn dict_at(a: &Dict, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    let values = a.values().as_string_opt::<i32>()?;
    Some(values.value(a.keys().value(i) as usize).to_string())
}

fn time_at(
    s: &Prim<Int64Type>,
    ns: &Prim<UInt32Type>,
    i: usize,
) -> std::result::Result<Option<DateTime<Utc>>, String> {
    if s.is_null(i) {
        return Ok(None);
    }
    let nanos = if ns.is_null(i) { 0 } else { ns.value(i) };
    DateTime::from_timestamp(s.value(i), nanos)
        .map(Some)
        .ok_or_else(|| format!("time {}.{nanos} out of range", s.value(i)))
}

impl Manifest {
    /// Assemble and validate a manifest from its head and body, as [`Manifest::from_json`]
    /// does for a v1 document: safe paths, sorted, no duplicates, and the entries must hash to
    /// the head's digest. `location` names the body in errors.
    pub fn from_compact(head: Head, body: Body, location: &str) -> Result<Manifest> {
        let mut m = head.manifest;
        let mut body = body;
        super::check_entries(&body.shards, location)?;
        let stored = body.shards.len() as u64;
        if !head.retracted.is_empty() {
            let mut retracted = head.retracted.iter().peekable();
            body.shards.retain(|e| {
                while retracted.next_if(|r| r.as_str() < e.path.as_str()).is_some() {}
                retracted.next_if(|r| **r == e.path).is_none()
            });
        }
        let digest = super::digest_of(&body.shards);
        if digest != m.digest || stored != head.body.entries {
            return Err(Error::InvalidManifest {
                location: location.to_string(),
                reason: format!(
                    "its {} entries hash to {digest}, not to the head's digest {}; the body was \
                     replaced or corrupted",
                    body.shards.len(),
                    m.digest
                ),
            });
        }
        m.shards = body.shards;
        m.totals = super::totals_of(&m.shards);
        match m.copied_from.as_mut() {
            Some(c) => c.stats = body.stats,
            None if !body.stats.is_empty() => {
                return Err(Error::InvalidManifest {
                    location: location.to_string(),
                    reason: "source stats in the body, but no copied_from in the head".into(),
                })
            }
            None => {}
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(path: &str, n: u64) -> ShardEntry {
        ShardEntry {
            path: path.into(),
            size: n,
            sha256: format!("{n:064x}"),
            mtime: Some(Utc.timestamp_opt(1_700_000_000 + n as i64, 123_456_789).unwrap()),
            etag: Some(format!("\"e{n}\"")),
            rows: Some(n * 10),
            row_groups: Some(n),
            schema: Some("sha256:0123456789abcdef".into()),
            parquet_error: None,
        }
    }

    /// Every field of every entry, and every source stat (with or without an entry of its
    /// path), comes back exactly.
    #[test]
    fn head_and_body_round_trip_every_field() {
        let mut bare = entry("top.json", 7);
        (bare.mtime, bare.etag, bare.rows, bare.row_groups, bare.schema) = (None, None, None, None, None);
        let mut broken = entry("a/b/broken.parquet", 3);
        broken.set_footer(Err("not Parquet".into()));
        let shards = vec![entry("a/b/x.parquet", 1), broken, entry("a/c.parquet", 2), bare];
        let mut m = Manifest::new("s3://b/p", shards).unwrap();
        let stat = |p: &str, mtime, etag: Option<&str>| SourceStat {
            path: p.into(),
            mtime,
            etag: etag.map(String::from),
        };
        m.copied_from = Some(super::super::CopiedFrom {
            source: "s3 e b /p".into(),
            stats: vec![
                stat(
                    "a/b/x.parquet",
                    Some(Utc.timestamp_opt(5, 6).unwrap()),
                    Some("\"s\""),
                ),
                stat("a/gone.parquet", None, Some("\"g\"")),
                stat("top.json", None, None),
            ],
        });
        let body = encode_body(&m).unwrap();
        let body_ref = BodyRef {
            key: new_body_key(&m.digest),
            bytes: body.len() as u64,
            entries: m.shards.len() as u64,
        };
        let head_bytes = encode_head(&m, &body_ref);
        assert!(is_head(&head_bytes));
        let head = decode_head(&head_bytes, "head").unwrap();
        assert_eq!(head.body, body_ref);
        let back = Manifest::from_compact(head, decode_body(body.into(), "b").unwrap(), "b").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_body_that_does_not_match_its_head_is_refused_by_name() {
        let m = Manifest::new("x", vec![entry("a", 1), entry("b", 2)]).unwrap();
        let other = Manifest::new("x", vec![entry("a", 1), entry("b", 3)]).unwrap();
        let body_ref = BodyRef {
            key: new_body_key(&m.digest),
            bytes: 0,
            entries: 2,
        };
        let head = decode_head(&encode_head(&m, &body_ref), "h").unwrap();
        let body = decode_body(encode_body(&other).unwrap().into(), "B").unwrap();
        let e = Manifest::from_compact(head, body, "s3://b/_shardsync/manifests/k").unwrap_err();
        assert!(
            e.to_string().contains("manifests/k") && e.to_string().contains("digest"),
            "{e}"
        );
        let e = decode_body(Bytes::from_static(b"PAR1garbage"), "s3://b/body").unwrap_err();
        assert!(e.to_string().contains("s3://b/body"), "{e}");
    }

    #[test]
    fn a_head_cannot_point_outside_the_bodies_folder() {
        for key in [
            "train/a.parquet",
            "_shardsync/manifests/../lock.json",
            "_shardsync/manifests/",
        ] {
            let m = Manifest::new("x", vec![]).unwrap();
            let body = BodyRef {
                key: key.into(),
                bytes: 0,
                entries: 0,
            };
            assert!(decode_head(&encode_head(&m, &body), "h").is_err(), "{key}");
        }
    }
}
