//! The integration tests, one binary: the support code (servers, the sim, fixtures) compiles once.
//! Each module is one behaviour area.

mod support;

mod architect_diff;
mod architect_export;
mod architect_plan;
mod architect_restore;
mod cli;
mod completeness;
mod export_fidelity;
mod export_local;
mod export_s3;
mod faults;
mod in_process;
mod incremental;
mod infra;
mod judge;
mod operations;
mod published;
mod read_back;
mod restore;
mod restore_rebuild;
mod restore_safety;
mod sim_architect;
mod sim_sdk;
mod storage_faults;
mod structure;
