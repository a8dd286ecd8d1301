//! collab-operator: reconciles `CollabServer` resources (group `collab.zedi.dev`) into the
//! Kubernetes objects that run collab-server.
//!
//! ```text
//! watch CollabServer (+ owned Deployments, Services, ConfigMaps, PDBs, HPAs; labelled Secrets)
//!   └─ controller::reconcile
//!        dereference ─▶ validate ─▶ build ─▶ apply ─▶ status
//!        (read IO)      (pure)      (pure)   (SSA)    (conditions)
//! ```
//!
//! [`server_contract`] is the one place that knows collab-server's variable names, ports and
//! probe paths (a leaf: it imports nothing of the crate), [`server_env`] the one that turns a
//! validated CollabServer into the server's environment; [`labels`] and [`names`] the one place for labels and object names. The
//! validated value ([`validate::ValidatedCollabServer`]) is also the input of
//! [`ecs`], which renders ECS Fargate task and service definitions from the same spec.
//!
//! Around the controller: [`leader`] (only the replica holding the Lease runs it), [`scope`]
//! (the whole cluster or `--watch-namespaces`), [`install`] (`--apply-crd`) and [`health`]
//! (what `/health` on the [`admin`] listener reports).

pub mod admin;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod dereferenced;
pub mod ecs;
pub mod health;
pub mod install;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod scope;
pub mod server_contract;
pub mod server_env;
pub mod telemetry;
pub mod validate;

#[cfg(test)]
mod fixtures;
