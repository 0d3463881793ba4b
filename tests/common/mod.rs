#![allow(dead_code)]
pub mod azurite;
pub mod gcs;
pub mod moto;
pub mod process;
pub mod s3;
