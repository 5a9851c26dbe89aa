//! flowvault backs up every Architect flow of a Genesys Cloud organization to local disk or
//! S3-compatible object storage, with a manifest that records what happened to each flow.
//!
//! The pieces, left to right: [`genesys`] speaks to the API, [`export`] runs the pipeline,
//! [`sink`] stores documents, [`manifest`] records the run; [`archive`] reads runs back (runs,
//! verify, diff). [`settings`] declares every setting
//! and resolves flags and environment into one validated value; [`cli`] (the only module that
//! knows clap) and [`commands`] are the binary's edge; [`sim`] is a simulated org for tests,
//! benchmarks and the demo. See ARCHITECTURE.md.

pub mod architect;
pub mod archive;
pub mod cli;
pub mod commands;
pub mod document;
pub mod export;
pub mod genesys;
pub mod manifest;
pub mod metrics;
pub mod preflight;
pub mod restore;
pub mod secret;
pub mod settings;
pub mod sim;
pub mod sink;
pub mod tls;
