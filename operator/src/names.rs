//! Names of the objects a CollabServer gets: `<name>` plus a role suffix. The builder, the
//! dereference step (the managed Redis Secret) and the status endpoint all take them from here.

/// ServiceAccount, client Service and server Deployment: the CollabServer's own name.
pub fn server(instance: &str) -> String {
    instance.to_owned()
}

/// ClusterIP Service with the metrics port (scraped by Prometheus, never exposed).
pub fn metrics_service(instance: &str) -> String {
    format!("{instance}-metrics")
}

/// PersistentVolumeClaim of the embedded SQLite database.
pub fn data_volume(instance: &str) -> String {
    format!("{instance}-data")
}

/// Managed Redis: Deployment, Service, ServiceAccount, NetworkPolicy and the Secret with its
/// password, URL and config file.
pub fn redis(instance: &str) -> String {
    format!("{instance}-redis")
}
