#![warn(missing_docs, missing_debug_implementations)]
//! shardsync: keep Parquet training datasets byte-identical across object stores.
//!
//! The pipeline, each stage its own module:
//!
//! ```text
//! store::Dataset ──► manifest (list + hash + footer) ──► diff::Plan ──► transfer (verified copy)
//!                                                                      │
//!                                     report ◄── commit (manifest last, conditional) ◄┘
//! ```
//!
//! A Rust training pipeline can call [`sync::sync`] or [`check::check`] directly; the `shardsync`
//! binary is a thin layer over the same calls.

mod aws_credentials;
pub mod bandwidth;
pub mod check;
pub mod commit;
pub mod demo;
pub mod diff;
pub mod display;
pub mod error;
pub mod events;
pub mod filter;
mod footer;
pub mod hash;
pub mod layout;
pub mod listing;
pub mod local;
mod lock;
pub mod manifest;
pub mod remotes;
pub mod report;
mod retry;
mod s3_control;
pub mod safety;
pub mod store;
mod store_errors;
mod store_options;
mod store_url;
pub mod sync;
mod tee;
pub mod transfer;
pub mod verify;

pub use error::{Error, Result};
pub use manifest::{Manifest, ShardEntry};
pub use store::{Dataset, OpenOptions};
