#!/usr/bin/env python3
"""Write the Parquet corpus that tests/parquet_corpus.rs decodes, and record what pyarrow reads.

    pip install pyarrow fastparquet polars duckdb
    python3 tests/parquet_corpus/make_corpus.py

Writes files/*.parquet (small files from pyarrow, fastparquet, polars and duckdb: every codec,
the encodings, data page v1/v2, nested, decimal, timestamp and int96 columns, empty files,
many row groups, encrypted footers, truncated and corrupt footers) and expected.json: for each
file, whether pyarrow reads its footer and, if so, its row and row-group counts (and the same
from DuckDB's independent reader, a second opinion where pyarrow refuses a file). The expected
values are read back from the files by pyarrow, never copied from the write parameters.

The files are committed; rerun this only to grow the corpus (a missing writer is skipped, and
the files it wrote before stay out of expected.json, so rerun with all four installed).
"""
import base64
import datetime
import decimal
import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "files"
ROWS = 300


def base_table(n=ROWS):
    """Flat columns of the common types, with nulls."""
    ints = [None if i % 17 == 0 else i * 7 - 1000 for i in range(n)]
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "i32": pa.array(ints, pa.int32()),
            "f64": pa.array([i / 3 for i in range(n)], pa.float64()),
            "f32": pa.array([i / 7 for i in range(n)], pa.float32()),
            "flag": pa.array([i % 3 == 0 for i in range(n)], pa.bool_()),
            "text": pa.array([None if i % 11 == 0 else f"tok-{i % 23}" for i in range(n)]),
            "blob": pa.array([bytes([i % 256]) * (i % 5) for i in range(n)], pa.binary()),
        }
    )


def typed_table(n=ROWS):
    """Decimals, temporal types, fixed-size binary, dictionary, float16, null."""
    t0 = datetime.datetime(2024, 1, 1, 12, 0, 0)
    ts = [t0 + datetime.timedelta(seconds=i * 61) for i in range(n)]
    return pa.table(
        {
            "dec9": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(9, 2)),
            "dec18": pa.array([decimal.Decimal(i * 10**9) / 1000 for i in range(n)], pa.decimal128(18, 3)),
            "dec38": pa.array([decimal.Decimal(i) ** 5 for i in range(n)], pa.decimal128(38, 0)),
            "dec76": pa.array([decimal.Decimal(i) for i in range(n)], pa.decimal256(76, 10)),
            "ts_ns": pa.array(ts, pa.timestamp("ns")),
            "ts_us_utc": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "ts_ms": pa.array(ts, pa.timestamp("ms")),
            "ts_s": pa.array(ts, pa.timestamp("s", tz="Europe/Paris")),
            "date": pa.array([d.date() for d in ts], pa.date32()),
            "time_us": pa.array([d.time() for d in ts], pa.time64("us")),
            "time_ms": pa.array([d.time() for d in ts], pa.time32("ms")),
            "dur": pa.array([datetime.timedelta(seconds=i) for i in range(n)], pa.duration("us")),
            "fsb": pa.array([i.to_bytes(16, "little") for i in range(n)], pa.binary(16)),
            "dict": pa.array([f"c{i % 4}" for i in range(n)]).dictionary_encode(),
            "f16": pa.array([float(i % 100) for i in range(n)], pa.float16()),
            "nothing": pa.nulls(n),
            "u8": pa.array([i % 256 for i in range(n)], pa.uint8()),
            "u64": pa.array([2**63 + i for i in range(n)], pa.uint64()),
            "big_text": pa.array([f"s{i}" for i in range(n)], pa.large_string()),
        }
    )


def nested_table(n=ROWS):
    """Struct, list, large list, fixed-size list, map, list of struct, struct of list."""
    return pa.table(
        {
            "tokens": pa.array([list(range(i % 7)) for i in range(n)], pa.list_(pa.int32())),
            "big": pa.array([[f"w{j}" for j in range(i % 3)] for i in range(n)], pa.large_list(pa.string())),
            "emb": pa.array([[float(i), float(-i), 0.5] for i in range(n)], pa.list_(pa.float32(), 3)),
            "meta": pa.array(
                [{"src": f"s{i % 5}", "score": i / 10, "ok": i % 2 == 0} for i in range(n)],
                pa.struct([("src", pa.string()), ("score", pa.float64()), ("ok", pa.bool_())]),
            ),
            "attrs": pa.array(
                [[(f"k{j}", j) for j in range(i % 4)] for i in range(n)], pa.map_(pa.string(), pa.int64())
            ),
            "turns": pa.array(
                [[{"role": "user", "len": j} for j in range(i % 3)] for i in range(n)],
                pa.list_(pa.struct([("role", pa.string()), ("len", pa.int32())])),
            ),
            "deep": pa.array(
                [{"a": {"b": [[i, None]] if i % 2 else None}} for i in range(n)],
                pa.struct([("a", pa.struct([("b", pa.list_(pa.list_(pa.int64())))]))]),
            ),
        }
    )


def pyarrow_files():
    t = base_table()
    for codec in ["snappy", "gzip", "zstd", "lz4", "brotli", "none"]:
        yield f"pyarrow-codec-{codec}", lambda p, c=codec: pq.write_table(t, p, compression=c)
    yield "pyarrow-zstd-level19", lambda p: pq.write_table(t, p, compression="zstd", compression_level=19)
    yield "pyarrow-plain", lambda p: pq.write_table(t, p, use_dictionary=False)
    numeric = t.select(["id", "i32", "f64", "f32"])
    yield "pyarrow-delta-binary-packed", lambda p: pq.write_table(
        numeric.select(["id", "i32"]), p, use_dictionary=False, column_encoding="DELTA_BINARY_PACKED"
    )
    yield "pyarrow-byte-stream-split", lambda p: pq.write_table(
        numeric.select(["f64", "f32"]), p, use_dictionary=False, column_encoding="BYTE_STREAM_SPLIT"
    )
    strs = t.select(["text", "blob"])
    for enc in ["DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY"]:
        yield f"pyarrow-{enc.lower().replace('_', '-')}", lambda p, e=enc: pq.write_table(
            strs, p, use_dictionary=False, column_encoding=e
        )
    yield "pyarrow-rle-bool", lambda p: pq.write_table(
        t.select(["flag"]), p, use_dictionary=False, column_encoding="RLE", data_page_version="2.0"
    )
    for v in ["1.0", "2.0"]:
        yield f"pyarrow-datapage-v{v[0]}", lambda p, v=v: pq.write_table(t, p, data_page_version=v)
    for v in ["1.0", "2.4", "2.6"]:
        yield f"pyarrow-format-{v}", lambda p, v=v: pq.write_table(typed_table(), p, version=v)
    yield "pyarrow-typed", lambda p: pq.write_table(typed_table(), p)
    yield "pyarrow-int96", lambda p: pq.write_table(typed_table(), p, use_deprecated_int96_timestamps=True)
    yield "pyarrow-decimal-as-int", lambda p: pq.write_table(
        typed_table().select(["dec9", "dec18", "dec38"]), p, store_decimal_as_integer=True
    )
    yield "pyarrow-nested", lambda p: pq.write_table(nested_table(), p)
    yield "pyarrow-nested-noncompliant", lambda p: pq.write_table(
        nested_table(), p, use_compliant_nested_type=False
    )
    yield "pyarrow-nested-v2-zstd", lambda p: pq.write_table(
        nested_table(), p, data_page_version="2.0", compression="zstd"
    )
    yield "pyarrow-no-arrow-schema", lambda p: pq.write_table(typed_table(), p, store_schema=False)
    yield "pyarrow-no-stats", lambda p: pq.write_table(t, p, write_statistics=False)
    yield "pyarrow-page-index-crc", lambda p: pq.write_table(
        t, p, write_page_index=True, write_page_checksum=True, max_rows_per_page=16
    )
    yield "pyarrow-sorted-bloom", lambda p: pq.write_table(
        t,
        p,
        sorting_columns=[pq.SortingColumn(0)],
        bloom_filter_options={"text": {"ndv": 30, "fpp": 0.05}},
    )
    yield "pyarrow-many-row-groups", lambda p: pq.write_table(t, p, row_group_size=7)
    yield "pyarrow-empty-0-rows", lambda p: pq.write_table(t.slice(0, 0), p)
    yield "pyarrow-empty-nested", lambda p: pq.write_table(nested_table().slice(0, 0), p)
    yield "pyarrow-no-columns", lambda p: pq.write_table(pa.table({}), p)
    yield "pyarrow-wide", lambda p: pq.write_table(
        pa.table({f"c{i:04d}": pa.array([i] * 3, pa.int16()) for i in range(600)}), p
    )

    def appended(p):
        with pq.ParquetWriter(p, t.schema, compression="lz4") as w:
            for k in range(5):
                w.write_table(t.slice(k * 40, 40 + k))

    yield "pyarrow-writer-5-batches-lz4", appended
    yield "pyarrow-kv-metadata", lambda p: pq.write_table(
        t.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": {}}}), "x" * 10: "y" * 3000}), p
    )


class ToyKms:
    """A KMS client for tests only: 'wraps' a key by base64, so the corpus can be regenerated."""

    def __new__(cls, _config):
        import pyarrow.parquet.encryption as pe

        class Kms(pe.KmsClient):
            def __init__(self):
                pe.KmsClient.__init__(self)

            def wrap_key(self, key_bytes, master_key_identifier):
                return base64.b64encode(master_key_identifier.encode() + b":" + key_bytes)

            def unwrap_key(self, wrapped_key, master_key_identifier):
                raw = base64.b64decode(wrapped_key)
                return raw.split(b":", 1)[1]

        return Kms()


def encrypted_files():
    import pyarrow.parquet.encryption as pe

    t = base_table(60)
    factory = pe.CryptoFactory(lambda cfg: ToyKms(cfg))
    kms = pe.KmsConnectionConfig(custom_kms_conf={"footer": "0123456789012345", "col": "1234567890123450"})

    def write(p, plaintext_footer):
        cfg = pe.EncryptionConfiguration(
            footer_key="footer",
            column_keys={"col": ["text", "blob"]},
            plaintext_footer=plaintext_footer,
            double_wrapping=False,
            encryption_algorithm="AES_GCM_V1",
        )
        props = factory.file_encryption_properties(kms, cfg)
        pq.write_table(t, p, encryption_properties=props)

    yield "pyarrow-encrypted-footer", lambda p: write(p, False)
    yield "pyarrow-encrypted-columns-plaintext-footer", lambda p: write(p, True)


def fastparquet_files():
    import fastparquet
    import pandas as pd

    df = base_table().to_pandas()
    for codec in ["SNAPPY", "GZIP", "ZSTD", "LZ4", "BROTLI", "UNCOMPRESSED"]:
        yield f"fastparquet-{codec.lower()}", lambda p, c=codec: fastparquet.write(p, df, compression=c)
    typed = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=ROWS, freq="min"),
            "ts_tz": pd.date_range("2024-01-01", periods=ROWS, freq="h", tz="UTC"),
            "cat": pd.Categorical([f"c{i % 3}" for i in range(ROWS)]),
            "i8": pd.array([i % 100 for i in range(ROWS)], dtype="int8"),
            "nullable": pd.array([None if i % 5 == 0 else i for i in range(ROWS)], dtype="Int64"),
            "obj": [f"o{i}" for i in range(ROWS)],
        }
    )
    yield "fastparquet-int96", lambda p: fastparquet.write(p, typed, times="int96")
    yield "fastparquet-typed", lambda p: fastparquet.write(p, typed)
    yield "fastparquet-row-groups", lambda p: fastparquet.write(p, typed, row_group_offsets=25)
    yield "fastparquet-empty", lambda p: fastparquet.write(p, typed.iloc[:0])
    yield "fastparquet-no-stats", lambda p: fastparquet.write(p, typed, stats=False)


def polars_files():
    import polars as pl

    df = pl.from_arrow(base_table())
    for codec in ["snappy", "gzip", "zstd", "lz4", "brotli", "uncompressed"]:
        yield f"polars-{codec}", lambda p, c=codec: df.write_parquet(p, compression=c)
    nested = pl.DataFrame(
        {
            "tokens": [list(range(i % 5)) for i in range(ROWS)],
            "meta": [{"a": i, "b": f"x{i}"} for i in range(ROWS)],
            "cat": pl.Series([f"c{i % 3}" for i in range(ROWS)], dtype=pl.Categorical),
            "enum": pl.Series([["a", "b"][i % 2] for i in range(ROWS)], dtype=pl.Enum(["a", "b"])),
            "dec": pl.Series([decimal.Decimal(i) / 10 for i in range(ROWS)], dtype=pl.Decimal(10, 1)),
            "dt": pl.datetime_range(
                datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 1) + datetime.timedelta(minutes=ROWS - 1),
                "1m", eager=True, time_zone="UTC",
            ),
        }
    )
    yield "polars-nested-typed", lambda p: nested.write_parquet(p)
    # pyarrow refuses Int128 ("Integers with more than 64 bits"); the footer itself is sound.
    wide_int = pl.DataFrame({"i128": pl.Series(list(range(ROWS)), dtype=pl.Int128)})
    yield "polars-int128", lambda p: wide_int.write_parquet(p)
    yield "polars-row-groups-no-stats", lambda p: df.write_parquet(p, row_group_size=20, statistics=False)
    yield "polars-empty", lambda p: df.head(0).write_parquet(p)
    yield "polars-via-pyarrow", lambda p: df.write_parquet(p, use_pyarrow=True)


def duckdb_files():
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE t AS SELECT i AS id, i::INTEGER % 7 AS small, 'tok-' || (i % 23) AS text,
              (i / 3)::DOUBLE AS f, (i * 1.25)::DECIMAL(12, 2) AS dec, (i::HUGEINT << 70) AS huge,
              TIMESTAMP '2024-01-01' + INTERVAL (i) MINUTE AS ts, uuid() AS u,
              [i, i + 1] AS lst, {{'a': i, 'b': 'x' || i}} AS st, MAP {{'k': i}} AS m,
              INTERVAL (i) SECOND AS iv, i % 2 = 0 AS flag
            FROM range({ROWS}) r(i)"""
    )

    def copy(opts, query="SELECT * FROM t"):
        return lambda p: con.execute(f"COPY ({query}) TO '{p}' (FORMAT PARQUET{opts})")

    for codec in ["snappy", "gzip", "zstd", "lz4", "brotli", "uncompressed"]:
        yield f"duckdb-{codec}", copy(f", COMPRESSION {codec}")
    yield "duckdb-v2", copy(", PARQUET_VERSION V2")
    yield "duckdb-row-groups", copy(", ROW_GROUP_SIZE 16")
    yield "duckdb-empty", copy("", "SELECT * FROM t WHERE false")


WRITERS = {
    "pyarrow": pyarrow_files,
    "pyarrow-encryption": encrypted_files,
    "fastparquet": fastparquet_files,
    "polars": polars_files,
    "duckdb": duckdb_files,
}


def damaged_files(good: pathlib.Path):
    """Footers a reader must refuse: cut, overwritten, or not Parquet at all."""
    raw = good.read_bytes()
    meta_len = int.from_bytes(raw[-8:-4], "little")
    yield "damaged-truncated-tail", raw[:-100]
    yield "damaged-truncated-half", raw[: len(raw) // 2]
    yield "damaged-footer-length-too-big", raw[:-8] + (len(raw) * 4).to_bytes(4, "little") + b"PAR1"
    mid = len(raw) - 8 - meta_len // 2
    yield "damaged-footer-garbage", raw[:mid] + bytes([0xFF] * 64) + raw[mid + 64 :]
    yield "damaged-zero-bytes", b""
    yield "damaged-magic-only", b"PAR1PAR1"
    yield "damaged-csv-named-parquet", b"id,text\n1,hello\n2,world\n"
    yield "damaged-pare-tail-crafted", raw[:-4] + b"PARE"


def pyarrow_reads(path: pathlib.Path):
    try:
        md = pq.ParquetFile(path).metadata
        return {"readable": True, "rows": md.num_rows, "row_groups": md.num_row_groups}
    except Exception as e:  # noqa: BLE001 - any refusal is the fact we record
        return {"readable": False, "error": f"{type(e).__name__}: {e}"[:300]}


def duckdb_reads(path: pathlib.Path):
    """A second, independent reader's view of the footer (DuckDB's own Parquet reader)."""
    try:
        import duckdb
    except ImportError:
        return None
    try:
        rows, groups = duckdb.execute(
            "SELECT num_rows, num_row_groups FROM parquet_file_metadata(?)", [str(path)]
        ).fetchone()
        return {"readable": True, "rows": rows, "row_groups": groups}
    except Exception as e:  # noqa: BLE001
        return {"readable": False, "error": f"{type(e).__name__}: {e}"[:300]}


def main():
    OUT.mkdir(exist_ok=True)
    expected = []
    for writer, gen in WRITERS.items():
        try:
            files = list(gen())
        except ImportError as e:
            print(f"skipping {writer}: {e}", file=sys.stderr)
            continue
        for name, write in files:
            path = OUT / f"{name}.parquet"
            path.unlink(missing_ok=True)
            write(str(path))
            expected.append({"file": path.name, "writer": writer, "encrypted": "encrypt" in name})
    for name, data in damaged_files(OUT / "pyarrow-codec-snappy.parquet"):
        path = OUT / f"{name}.parquet"
        path.write_bytes(data)
        expected.append({"file": path.name, "writer": "damaged", "encrypted": "pare" in name})
    for e in expected:
        e["pyarrow"] = pyarrow_reads(OUT / e["file"])
        e["duckdb"] = duckdb_reads(OUT / e["file"])
    expected.sort(key=lambda e: e["file"])
    doc = {
        "generated_by": f"make_corpus.py with pyarrow {pa.__version__}",
        "files": expected,
    }
    (HERE / "expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    total = sum((OUT / e["file"]).stat().st_size for e in expected)
    unreadable = [e["file"] for e in expected if not e["pyarrow"]["readable"]]
    print(f"{len(expected)} files, {total} bytes; pyarrow refuses {len(unreadable)}: {unreadable}")


if __name__ == "__main__":
    main()
