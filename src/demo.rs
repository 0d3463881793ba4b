//! A synthetic tokenized dataset for the demo and the tests: Parquet shards with a realistic
//! schema (document id, source, token ids) plus a `dataset_info.json` sidecar.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, ListArray, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

const SOURCES: [&str; 4] = ["web", "books", "code", "arxiv"];

/// The demo schema.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new(
            "token_ids",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, false))),
            false,
        ),
        Field::new("n_tokens", DataType::Int32, false),
    ]))
}

/// Encode one shard as Parquet bytes: `rows` documents, seeded so the bytes are reproducible.
pub fn shard_bytes(shard: usize, rows: usize, seed: u64) -> Result<Vec<u8>> {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ (shard as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut doc_ids = Vec::with_capacity(rows);
    let mut sources = Vec::with_capacity(rows);
    let mut offsets = vec![0i32];
    let mut tokens: Vec<i32> = Vec::with_capacity(rows * 200);
    let mut lens = Vec::with_capacity(rows);
    for r in 0..rows {
        doc_ids.push((shard * rows + r) as i64);
        sources.push(SOURCES[rng.random_range(0..SOURCES.len())]);
        let n = rng.random_range(32..384);
        for _ in 0..n {
            tokens.push(rng.random_range(0..50_257));
        }
        offsets.push(tokens.len() as i32);
        lens.push(n);
    }
    let item = Arc::new(Field::new("item", DataType::Int32, false));
    let list = ListArray::new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(Int32Array::from(tokens)),
        None,
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(doc_ids)),
        Arc::new(StringArray::from(sources)),
        Arc::new(list),
        Arc::new(Int32Array::from(lens)),
    ];
    let batch = RecordBatch::try_new(schema(), columns).map_err(|e| invalid(shard, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).map_err(|e| invalid(shard, e))?,
        ))
        .set_max_row_group_row_count(Some(1024))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema(), Some(props)).map_err(|e| invalid(shard, e))?;
    w.write(&batch).map_err(|e| invalid(shard, e))?;
    w.close().map_err(|e| invalid(shard, e))?;
    Ok(out)
}

fn invalid(shard: usize, e: impl std::fmt::Display) -> Error {
    Error::InvalidParquet {
        path: shard_name(shard),
        reason: e.to_string(),
    }
}

/// `train/part-00007.parquet`.
pub fn shard_name(shard: usize) -> String {
    format!("train/part-{shard:05}.parquet")
}

/// Write a dataset of `shards` shards under `dir` (created if needed), plus its sidecar.
pub fn write_dataset(dir: &Path, shards: usize, rows: usize, seed: u64) -> Result<u64> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("train")).map_err(io(dir))?;
    let mut total = 0u64;
    for s in 0..shards {
        let bytes = shard_bytes(s, rows, seed)?;
        total += bytes.len() as u64;
        let p = dir.join(shard_name(s));
        std::fs::write(&p, &bytes).map_err(io(&p))?;
    }
    let info = serde_json::json!({
        "name": "shardsync-demo",
        "shards": shards,
        "rows_per_shard": rows,
        "schema": ["doc_id: int64", "source: utf8", "token_ids: list<int32>", "n_tokens: int32"],
        "tokenizer": "gpt2 (synthetic ids)",
    });
    let p = dir.join("dataset_info.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&info).expect("json")).map_err(io(&p))?;
    Ok(total)
}

/// Rewrite the given shards with new content (a new data version), same schema.
pub fn rewrite_shards(dir: &Path, which: &[usize], rows: usize, seed: u64) -> Result<()> {
    for &s in which {
        let bytes = shard_bytes(s, rows, seed.wrapping_add(1_000_003))?;
        let p = dir.join(shard_name(s));
        std::fs::write(&p, &bytes).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}
