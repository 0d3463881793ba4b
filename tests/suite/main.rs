//! One integration suite, written once against a store factory and run against memory,
//! local folders and a real S3 server (s3s-fs in this process on 127.0.0.1).

#[path = "../common/mod.rs"]
mod common;

mod aws_profiles;
mod backends;
mod check;
mod cli;
mod control_faults;
mod destination_full;
mod events;
mod faults;
mod harness;
mod hints;
mod input;
mod interrupt;
mod local_safety;
mod manifest_build;
mod misbehaving_relay;
mod parquet_corpus;
mod recall;
mod regressions;
mod remotes;
mod retries;
mod robustness;
mod s3_control;
mod safety;
mod smoke;
mod striping;
mod sync;
