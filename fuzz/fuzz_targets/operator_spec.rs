//! The operator's inputs: a CollabServer manifest and the `ecs.yaml` that `ecs render` reads.
//!
//! Input layout (UTF-8): `COLLABSERVER_YAML [\0 ECS_YAML [\0 SECRET_VALUE]]`. NUL cannot occur
//! in YAML, so it separates the parts; without one, the whole text is tried as both. The
//! CollabServer is parsed as the controller receives it (`serde_yaml` into the CRD type) and as
//! `ecs render` reads it (`ecs::parse_collab_server`), then validated against a cluster that has
//! none, the declared keys, or the referenced keys with known values (SECRET_VALUE, or
//! plausible ones). The ECS options are parsed and checked, and with a CollabServer, rendered.
//! Nothing may panic; errors are expected.
#![no_main]

use collab_operator::crd::CollabServer;
use collab_operator::dereferenced::{self, Dereferenced, RedisPassword};
use collab_operator::ecs::{self, options::EcsOptions};
use collab_operator::validate::{self, OperatorDefaults};
use libfuzzer_sys::fuzz_target;

/// Every Secret key the spec refers to, with a value of the shape that field expects.
fn referenced_keys(server: &CollabServer) -> Vec<(String, String, &'static str)> {
    let spec = &server.spec;
    let mut keys = Vec::new();
    if let Some(jwt) = spec.auth.as_ref().and_then(|a| a.jwt_secret_ref.as_ref()) {
        keys.push((
            jwt.name.clone(),
            jwt.key.clone(),
            "0123456789abcdef0123456789abcdef",
        ));
    }
    if let Some(database) = &spec.database {
        let url = "postgres://collab:secret@db:5432/collab";
        match &database.secret_ref.key {
            Some(key) => keys.push((database.secret_ref.name.clone(), key.clone(), url)),
            None => {
                for key in validate::DATABASE_URL_KEYS {
                    keys.push((database.secret_ref.name.clone(), key.to_owned(), url));
                }
            }
        }
    }
    if let Some(external) = spec.redis.as_ref().and_then(|r| r.external.as_ref()) {
        let r = &external.secret_ref;
        keys.push((r.name.clone(), r.key.clone(), "redis://redis:6379"));
    }
    for variable in &spec.env {
        if let Some(r) = variable
            .value_from
            .as_ref()
            .and_then(|source| source.secret_key_ref.as_ref())
        {
            keys.push((r.name.clone(), r.key.clone(), "value"));
        }
    }
    keys
}

fn validate_all(server: &CollabServer, secret_value: Option<&str>) {
    let defaults = OperatorDefaults::default();
    // Nothing in the cluster.
    let _ = validate::validate(server, &Dereferenced::default(), &defaults);

    // Every referenced Secret exists, keys known but not their values (as `ecs render`).
    let mut declared = Dereferenced::default();
    for name in dereferenced::referenced_secrets(server) {
        declared = declared.with_declared_secret(&name, std::iter::empty::<String>());
    }
    let keys = referenced_keys(server);
    for (name, key, _) in &keys {
        declared = declared.with_declared_secret(name, [key.as_str()]);
    }
    let _ = validate::validate(server, &declared, &defaults);

    // Values known (as the controller sees them), managed Redis and ServiceMonitor available.
    let mut known = Dereferenced::default();
    let mut by_secret: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = Default::default();
    for (name, key, plausible) in &keys {
        by_secret
            .entry(name.as_str())
            .or_default()
            .push((key.as_str(), secret_value.unwrap_or(*plausible)));
    }
    for (name, data) in by_secret {
        known = known.with_secret(name, data);
    }
    known.managed_redis_password =
        RedisPassword::stored(b"abcdefghijklmnop0123456789", Some("fuzz"));
    known.service_monitor_crd = true;
    if let Ok(validated) = validate::validate(server, &known, &defaults) {
        let _ = validated.endpoint();
        let _ = validate::secret_refs(&validated);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let server_yaml = parts.next().unwrap_or_default();
    let ecs_yaml = parts.next().unwrap_or(server_yaml);
    let secret_value = parts.next();

    // The controller's view: the API server hands it the typed object.
    if let Ok(server) = serde_yaml::from_str::<CollabServer>(server_yaml) {
        validate_all(&server, secret_value);
    }

    // `ecs render`'s view: strict parsing, then validation inside `render`.
    let server = ecs::parse_collab_server(server_yaml);
    if let Ok(server) = &server {
        validate_all(server, secret_value);
    }
    let Ok(options) = EcsOptions::from_yaml(ecs_yaml) else {
        return;
    };
    let _ = options.check();
    let _ = (
        options.family(),
        options.container_name(),
        options.log_stream_prefix(),
        options.health_check_grace_period_seconds(),
    );
    if let Ok(server) = &server {
        if let Ok(rendered) = ecs::render(server, &options) {
            let _ = rendered.files(ecs::Format::Cli);
            let _ = rendered.files(ecs::Format::Terraform);
        }
    }
});
