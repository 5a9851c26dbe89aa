//! flowvault backs up every Architect flow of a Genesys Cloud organization to local disk or
//! S3-compatible object storage, with a manifest that records what happened to each flow.
//!
//! The pieces, left to right: [`genesys`] speaks to the API, [`export`] runs the pipeline,
//! [`sink`] stores documents, [`manifest`] records the run, [`config`] and [`cli`] turn flags and
//! environment into settings, and [`sim`] is a simulated org for tests, benchmarks and the demo.

pub mod cli;
pub mod commands;
pub mod config;
pub mod export;
pub mod genesys;
pub mod manifest;
pub mod secret;
pub mod sim;
pub mod sink;
