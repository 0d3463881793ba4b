//! Decoding a Parquet footer into the facts a manifest records: rows, row groups, a schema
//! fingerprint. Knowledge, not a gate: an object whose footer does not decode is still synced,
//! and the reason given here becomes its entry's `parquet_error`.
//!
//! Only metadata is read, never a data page, so no compression codec is involved: a file of any
//! codec decodes here. Decoding is lenient where other readers are: when the parquet crate
//! refuses a footer that pyarrow reads (fastparquet's empty files declare the empty row-group
//! list with the wrong element type), the Thrift `FileMetaData` is read field by field for the
//! counts and the schema; when a schema has no Arrow form (pyarrow and parquet-rs both refuse
//! 128-bit integers), the fingerprint is taken over the Parquet schema instead.
//! `tests/parquet_corpus/` holds files of many writers and what pyarrow reads from each.

use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use parquet::schema::types::{SchemaDescriptor, Type, TypePtr};
use sha2::{Digest, Sha256};
use thrift::protocol::{TCompactInputProtocol, TInputProtocol, TType};

use crate::hash::{schema_fingerprint, ParquetFacts};

/// The footer's last eight bytes: metadata length (little-endian u32) and magic.
pub const FOOTER_LEN: usize = 8;
/// The magic of a plain Parquet file, at both ends.
pub const MAGIC: &[u8; 4] = b"PAR1";
/// The magic of a file whose footer is encrypted (Parquet modular encryption).
pub const ENCRYPTED_MAGIC: &[u8; 4] = b"PARE";
/// Largest footer read: real ones are kilobytes to a few megabytes, and a corrupt length must not
/// make a sync read gigabytes into memory.
pub const MAX_FOOTER: usize = 256 * 1024 * 1024;
/// Deepest schema nesting decoded by the Thrift path (a hostile footer must not exhaust the stack).
const MAX_SCHEMA_DEPTH: usize = 128;

/// Why an object of `size` bytes cannot be Parquet.
pub fn too_short(size: u64) -> String {
    format!("too short for a Parquet file ({size} bytes)")
}

/// The metadata length a footer's last eight bytes declare, or why there is no footer.
/// `tail` is the end of an object of `size` bytes.
pub fn meta_len(tail: &[u8], size: u64) -> Result<usize, String> {
    if size < (2 * MAGIC.len() + 4) as u64 || tail.len() < FOOTER_LEN {
        return Err(too_short(size));
    }
    let f = &tail[tail.len() - FOOTER_LEN..];
    match &f[4..] {
        m if m == MAGIC => {}
        m if m == ENCRYPTED_MAGIC => {
            return Err(
                "encrypted Parquet footer (PARE magic): its rows and schema need the decryption key".into(),
            )
        }
        _ => {
            return Err(
                "no Parquet footer: missing PAR1 magic at the end (truncated, or not a Parquet file)".into(),
            )
        }
    }
    let len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
    if len > MAX_FOOTER {
        return Err(format!(
            "footer length {len} is larger than the {MAX_FOOTER} bytes shardsync reads (corrupt?)"
        ));
    }
    if (len + FOOTER_LEN) as u64 > size - MAGIC.len() as u64 {
        return Err(format!(
            "footer length {len} exceeds the file size {size} (truncated or corrupt)"
        ));
    }
    Ok(len)
}

/// Decode `metadata ‖ len ‖ PAR1` (exactly the footer, no more).
pub fn parse_footer(footer: &[u8]) -> Result<ParquetFacts, String> {
    let len = meta_len(footer, u64::MAX)?;
    if footer.len() != len + FOOTER_LEN {
        return Err("footer length mismatch".into());
    }
    let meta = &footer[..len];
    match ParquetMetaDataReader::decode_metadata(meta) {
        Ok(md) => {
            let fm = md.file_metadata();
            let rows = u64::try_from(fm.num_rows()).map_err(|_| "negative row count".to_string())?;
            Ok(ParquetFacts {
                rows,
                row_groups: md.num_row_groups() as u64,
                schema: fingerprint(fm.schema_descr(), fm.key_value_metadata()),
            })
        }
        // A stricter reading than other readers make: try the Thrift structure directly, and
        // report the parquet crate's refusal when that fails too.
        Err(strict) => lenient(meta).map_err(|_| format!("corrupt Parquet footer: {strict}")),
    }
}

/// The Arrow schema's fingerprint, or the Parquet schema's when it has no Arrow form.
fn fingerprint(descr: &SchemaDescriptor, kv: Option<&Vec<KeyValue>>) -> String {
    match parquet::arrow::parquet_to_arrow_schema(descr, kv) {
        Ok(s) => schema_fingerprint(s.fields().iter().map(|f| f.as_ref())),
        Err(_) => {
            let mut printed = Vec::new();
            parquet::schema::printer::print_schema(&mut printed, descr.root_schema());
            let mut h = Sha256::new();
            h.update(b"parquet-schema\0");
            h.update(&printed);
            format!("sha256:{}", &hex::encode(h.finalize())[..16])
        }
    }
}

/// One `SchemaElement` of the Thrift footer, the fields a schema tree needs.
#[derive(Default)]
struct Element {
    physical: Option<i32>,
    length: Option<i32>,
    repetition: Option<i32>,
    name: String,
    children: Option<i32>,
    converted: Option<i32>,
    scale: Option<i32>,
    precision: Option<i32>,
    logical: Option<LogicalType>,
}

/// A field of a small Thrift struct: a number (ints and bools) or a nested struct.
enum Value {
    Num(i64),
    Struct(Vec<(i16, Value)>),
}

type Thrift<'a> = TCompactInputProtocol<&'a [u8]>;

fn terr(e: thrift::Error) -> String {
    format!("thrift: {e}")
}

/// Read `FileMetaData` field by field: num_rows (3), row_groups (4, counted), schema (2) and
/// key-value metadata (5); everything else is skipped, whatever its declared type.
fn lenient(meta: &[u8]) -> Result<ParquetFacts, String> {
    let mut p = TCompactInputProtocol::new(meta);
    let (mut rows, mut groups, mut schema, mut kv) = (None, None, Vec::new(), None);
    p.read_struct_begin().map_err(terr)?;
    loop {
        let f = p.read_field_begin().map_err(terr)?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(3), TType::I64) => rows = Some(p.read_i64().map_err(terr)?),
            (Some(4), TType::List) => {
                let l = p.read_list_begin().map_err(terr)?;
                for _ in 0..l.size {
                    p.skip(l.element_type).map_err(terr)?;
                }
                p.read_list_end().map_err(terr)?;
                groups = Some(l.size as u64);
            }
            (Some(2), TType::List) => schema = read_list(&mut p, read_element)?,
            (Some(5), TType::List) => kv = Some(read_list(&mut p, read_key_value)?),
            (_, t) => p.skip(t).map_err(terr)?,
        }
        p.read_field_end().map_err(terr)?;
    }
    let rows = rows.ok_or("no num_rows")?;
    let rows = u64::try_from(rows).map_err(|_| "negative row count".to_string())?;
    let row_groups = groups.ok_or("no row_groups")?;
    let mut next = 0;
    let root = build_type(&schema, &mut next, 0)?;
    let descr = SchemaDescriptor::new(root);
    Ok(ParquetFacts {
        rows,
        row_groups,
        schema: fingerprint(&descr, kv.as_ref()),
    })
}

fn read_list<'a, T>(
    p: &mut Thrift<'a>,
    item: fn(&mut Thrift<'a>) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let l = p.read_list_begin().map_err(terr)?;
    if l.element_type != TType::Struct {
        return Err("list of non-structs".into());
    }
    let mut out = Vec::new();
    for _ in 0..l.size {
        out.push(item(p)?);
    }
    p.read_list_end().map_err(terr)?;
    Ok(out)
}

fn read_element(p: &mut Thrift<'_>) -> Result<Element, String> {
    let mut e = Element::default();
    p.read_struct_begin().map_err(terr)?;
    loop {
        let f = p.read_field_begin().map_err(terr)?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(4), TType::String) => e.name = p.read_string().map_err(terr)?,
            (Some(id @ (1 | 2 | 3 | 5 | 6 | 7 | 8)), TType::I32) => {
                let v = Some(p.read_i32().map_err(terr)?);
                match id {
                    1 => e.physical = v,
                    2 => e.length = v,
                    3 => e.repetition = v,
                    5 => e.children = v,
                    6 => e.converted = v,
                    7 => e.scale = v,
                    _ => e.precision = v,
                }
            }
            (Some(10), TType::Struct) => e.logical = logical_type(&read_small(p, 0)?),
            (_, t) => p.skip(t).map_err(terr)?,
        }
        p.read_field_end().map_err(terr)?;
    }
    p.read_struct_end().map_err(terr)?;
    Ok(e)
}

/// A struct of numbers and small structs (a `LogicalType` union and what it holds).
fn read_small(p: &mut Thrift<'_>, depth: usize) -> Result<Vec<(i16, Value)>, String> {
    if depth > 4 {
        return Err("logical type nested too deeply".into());
    }
    let mut out = Vec::new();
    p.read_struct_begin().map_err(terr)?;
    loop {
        let f = p.read_field_begin().map_err(terr)?;
        let v = match f.field_type {
            TType::Stop => break,
            TType::Bool => Some(Value::Num(p.read_bool().map_err(terr)? as i64)),
            TType::I08 => Some(Value::Num(p.read_i8().map_err(terr)? as i64)),
            TType::I32 => Some(Value::Num(p.read_i32().map_err(terr)? as i64)),
            TType::Struct => Some(Value::Struct(read_small(p, depth + 1)?)),
            t => p.skip(t).map_err(terr).map(|_| None)?,
        };
        p.read_field_end().map_err(terr)?;
        out.extend(v.map(|v| (f.id.unwrap_or(0), v)));
    }
    p.read_struct_end().map_err(terr)?;
    Ok(out)
}

/// The logical type a `LogicalType` union holds; `None` for those the converted type covers.
fn logical_type(union: &[(i16, Value)]) -> Option<LogicalType> {
    let (id, Value::Struct(body)) = union.first()? else {
        return None;
    };
    let num = |k: i16| {
        body.iter().find_map(|(i, v)| match v {
            Value::Num(n) if *i == k => Some(*n),
            _ => None,
        })
    };
    let unit = || {
        body.iter().find_map(|(i, v)| match v {
            Value::Struct(u) if *i == 2 => match u.first()?.0 {
                1 => Some(TimeUnit::MILLIS),
                2 => Some(TimeUnit::MICROS),
                3 => Some(TimeUnit::NANOS),
                _ => None,
            },
            _ => None,
        })
    };
    Some(match id {
        1 => LogicalType::String,
        2 => LogicalType::Map,
        3 => LogicalType::List,
        4 => LogicalType::Enum,
        5 => LogicalType::decimal(num(1)? as i32, num(2)? as i32),
        6 => LogicalType::Date,
        7 => LogicalType::time(num(1)? != 0, unit()?),
        8 => LogicalType::timestamp(num(1)? != 0, unit()?),
        10 => LogicalType::integer(num(1)? as i8, num(2)? != 0),
        11 => LogicalType::Unknown,
        12 => LogicalType::Json,
        13 => LogicalType::Bson,
        14 => LogicalType::Uuid,
        15 => LogicalType::Float16,
        _ => return None,
    })
}

fn read_key_value(p: &mut Thrift<'_>) -> Result<KeyValue, String> {
    let (mut key, mut value) = (String::new(), None);
    p.read_struct_begin().map_err(terr)?;
    loop {
        let f = p.read_field_begin().map_err(terr)?;
        match (f.id, f.field_type) {
            (_, TType::Stop) => break,
            (Some(1), TType::String) => key = p.read_string().map_err(terr)?,
            (Some(2), TType::String) => value = Some(p.read_string().map_err(terr)?),
            (_, t) => p.skip(t).map_err(terr)?,
        }
        p.read_field_end().map_err(terr)?;
    }
    p.read_struct_end().map_err(terr)?;
    Ok(KeyValue::new(key, value))
}

/// The schema tree from its depth-first element list (a group says how many children follow).
fn build_type(elems: &[Element], next: &mut usize, depth: usize) -> Result<TypePtr, String> {
    if depth > MAX_SCHEMA_DEPTH {
        return Err("schema nested too deeply".into());
    }
    let e = elems.get(*next).ok_or("schema ends early")?;
    *next += 1;
    let converted = match e.converted {
        Some(c) => variant(ConvertedType::VARIANTS, c, "converted type", |v| v as i32)?,
        None => ConvertedType::NONE,
    };
    let repetition = e
        .repetition
        .map(|r| variant(Repetition::VARIANTS, r, "repetition", |v| v as i32))
        .transpose()?;
    let built = match (e.children, e.physical) {
        (Some(n), _) => {
            let fields = (0..n.max(0))
                .map(|_| build_type(elems, next, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            let mut b = Type::group_type_builder(&e.name)
                .with_converted_type(converted)
                .with_logical_type(e.logical.clone())
                .with_fields(fields);
            if let Some(r) = repetition.filter(|_| depth > 0) {
                b = b.with_repetition(r);
            }
            b.build()
        }
        (None, Some(t)) => {
            let mut b = Type::primitive_type_builder(
                &e.name,
                variant(PhysicalType::VARIANTS, t, "type", |v| v as i32)?,
            )
            .with_converted_type(converted)
            .with_logical_type(e.logical.clone())
            .with_length(e.length.unwrap_or(-1))
            .with_precision(e.precision.unwrap_or(-1))
            .with_scale(e.scale.unwrap_or(-1));
            if let Some(r) = repetition {
                b = b.with_repetition(r);
            }
            b.build()
        }
        (None, None) => {
            return Err(format!(
                "schema element {:?} has neither type nor children",
                e.name
            ))
        }
    };
    built.map(Arc::new).map_err(|err| err.to_string())
}

/// The enum variant whose Thrift value is `value`.
fn variant<T: Copy>(all: &[T], value: i32, what: &str, num: fn(T) -> i32) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| num(*v) == value)
        .ok_or_else(|| format!("unknown {what} {value}"))
}
