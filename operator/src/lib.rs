//! collab-operator: reconciles `CollabServer` resources (group `collab.zedi.dev`) into the
//! Kubernetes objects that run collab-server.
//!
//! ```text
//! watch CollabServer (+ owned Deployments, Services, ConfigMaps, PDBs, HPAs; referenced Secrets)
//!   └─ controller::reconcile
//!        dereference ─▶ validate ─▶ build ─▶ apply ─▶ status
//!        (read IO)      (pure)      (pure)   (SSA)    (conditions)
//! ```
//!
//! [`server_contract`] is the one place that knows collab-server's environment, ports and
//! probe paths; [`labels`] and [`names`] the one place for labels and object names. The
//! validated value ([`validate::ValidatedCollabServer`]) is also the input of
//! [`ecs`], which renders ECS Fargate task and service definitions from the same spec.

pub mod admin;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod dereferenced;
pub mod ecs;
pub mod labels;
pub mod metrics;
pub mod names;
pub mod server_contract;
pub mod telemetry;
pub mod validate;

#[cfg(test)]
mod fixtures;
