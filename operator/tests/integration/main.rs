//! Integration tests of the operator's pure pipeline and generated artifacts:
//! - `golden`: every built object of each case against `tests/golden/*.yaml`;
//! - `cel`: the CRD's CEL validation rules, evaluated on valid and invalid CollabServers;
//! - `generated`: `crds/collabserver.yaml`, the chart's CRD copy and the reference in
//!   `docs/operator.md` against what the code generates;
//! - `server_contract`: the environment the server container gets parses as collab-server's
//!   configuration (`collab_server::config::Config::from_env`);
//! - `ecs`: `ecs render` of each ECS case against its committed files (`deploy/ecs/zedi-dev/`,
//!   `tests/golden/ecs/`), and the task's environment through the same parser.
//!
//! - `managed_redis`: the managed Redis's built config file in a real `redis-server`.
//!
//! Regenerate committed files with `COLLAB_OPERATOR_BLESS=1 cargo test -p collab-operator`.

mod cel;
mod common;
mod configuration;
mod ecs;
mod generated;
mod golden;
#[path = "../shared/invalid_specs.rs"]
mod invalid_specs;
mod managed_redis;
mod server_contract;
