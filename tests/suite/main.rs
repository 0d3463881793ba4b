//! One integration suite, written once against a store factory and run against memory,
//! local folders, S3 servers (s3s-fs in this process, moto's) and Azurite, all on 127.0.0.1;
//! GCS's read path against fake-gcs-server.

#[path = "../common/mod.rs"]
mod common;

// First, so that its `backend_tests!` is in scope in every module below.
#[macro_use]
mod backends;

mod aws_profiles;
mod azure;
mod check;
mod cli;
mod cli_output;
mod compact_manifest;
mod control_faults;
mod destination_full;
mod events;
mod fanout;
mod faults;
mod filters;
mod gcs;
mod harness;
mod hints;
mod input;
mod interrupt;
mod local_safety;
mod manifest_build;
mod misbehaving_relay;
mod parquet_corpus;
mod partitions;
mod recall;
mod regressions;
mod remotes;
mod renames;
mod retries;
mod robustness;
mod s3_control;
mod safety;
mod smoke;
mod store_errors;
mod striping;
mod sync;
