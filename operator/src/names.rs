//! Names of the objects a CollabServer gets: `<name>` plus a role suffix. The builder, the
//! dereference step (the managed Redis Secret) and the status endpoint all take them from here.

/// The longest suffix of a derived name: [`metrics_service`]'s.
const LONGEST_SUFFIX: &str = "-metrics";

/// Longest name a CollabServer may have: every derived name must be a DNS label of at most 63
/// characters.
pub const MAX_INSTANCE_NAME_LENGTH: usize = 63 - LONGEST_SUFFIX.len();

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_derived_name_of_the_longest_instance_name_fits_a_dns_label() {
        let instance = "a".repeat(MAX_INSTANCE_NAME_LENGTH);
        let derived = [
            server(&instance),
            metrics_service(&instance),
            data_volume(&instance),
            redis(&instance),
        ];
        assert!(derived.iter().all(|name| name.len() <= 63), "{derived:?}");
        assert_eq!(metrics_service(&instance).len(), 63);
    }
}
