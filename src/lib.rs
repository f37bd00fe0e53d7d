//! pgdrill: disaster-recovery drills for CloudNativePG / Barman Cloud backups.
//!
//! The pipeline is scenario → plan → preflight(catalog) → provision → recover → verify →
//! teardown → report. This crate holds the pure core (catalog, preflight) and thin I/O edges
//! (object stores, local processes); `main.rs` only parses the command line.

pub mod backend;
pub mod barman;
pub mod baseline;
pub mod catalog;
pub mod checks;
pub mod cli;
pub mod cnpg;
pub mod drill;
pub mod duration;
pub mod exit;
pub mod hash;
pub mod k8s;
pub mod lsn;
pub mod outcome;
pub mod pg;
pub mod preflight;
pub mod proc;
pub mod publish;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scenario;
pub mod schedule;
pub mod source;
pub mod status_server;
pub mod store;
pub mod target;
pub mod time;
pub mod tools;
