//! The server container's environment, from a validated CollabServer: the one function the
//! Kubernetes builder and the ECS renderer both take it from, so the two cannot drift.
//! `tests/integration/server_contract.rs` feeds the result to the server's own parser
//! (`collab_server::config::Config::from_env`).

use crate::crd::v1alpha1::LogFormat;
use crate::server_contract::{DATA_DIR, METRICS_PORT, env};
use crate::validate::{
    Auth, DatabaseName, PostgresConnection, Redis, SecretRef, Storage, TokenKeys,
    ValidatedCollabServer,
};

/// Where a variable's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// A plain value (Kubernetes: the server ConfigMap; ECS: `environment`).
    Literal(String),
    /// A Secret key (Kubernetes: `secretKeyRef`; ECS: `secrets[].valueFrom`).
    Secret(SecretRef),
}

/// One variable of the server's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEnvVar {
    pub name: &'static str,
    pub value: EnvValue,
}

/// The environment the operator gives the server container, in a stable order (without the
/// CollabServer's own `env`, which is passed on as written).
pub fn environment(server: &ValidatedCollabServer) -> Vec<ServerEnvVar> {
    let mut vars = Vec::new();
    let mut literal = |name, value: String| {
        vars.push(ServerEnvVar {
            name,
            value: EnvValue::Literal(value),
        })
    };
    literal(env::PORT, server.port.to_string());
    literal(env::METRICS_PORT, METRICS_PORT.to_string());
    literal(
        env::SHUTDOWN_TIMEOUT_SECS,
        server.shutdown.server_timeout_seconds.to_string(),
    );
    if let Some(level) = &server.log_level {
        literal(env::LOG_LEVEL, level.clone());
    }
    literal(
        env::LOG_FORMAT,
        match server.log_format {
            LogFormat::Json => "json",
            LogFormat::Plain => "plain",
        }
        .to_owned(),
    );
    match &server.storage {
        Storage::Sqlite { .. } => literal(env::DATA_DIR, DATA_DIR.to_owned()),
        Storage::Postgres {
            ssl_mode,
            connection,
        } => {
            if let Some(mode) = ssl_mode {
                literal(env::DATABASE_SSLMODE, mode.clone());
            }
            if let PostgresConnection::Parts {
                database: DatabaseName::Literal(name),
                ..
            } = connection
            {
                literal(env::DATABASE_NAME, name.clone());
            }
        }
    }
    if let Auth::Tokens {
        keys,
        issuer,
        audience,
    } = &server.auth
    {
        match keys {
            TokenKeys::SharedSecret(_) => {}
            TokenKeys::Jwks { url } => literal(env::JWKS_URL, url.clone()),
            TokenKeys::Cognito {
                user_pool_id,
                region,
            } => {
                literal(env::COGNITO_USER_POOL_ID, user_pool_id.clone());
                literal(env::COGNITO_REGION, region.clone());
            }
        }
        if let Some(issuer) = issuer {
            literal(env::JWT_ISSUER, issuer.clone());
        }
        if let Some(audience) = audience {
            literal(env::JWT_AUDIENCE, audience.clone());
        }
    }

    let features = &server.features;
    if let Some((_, true)) = &features.api {
        literal(env::API_ADMIN_ONLY, "true".to_owned());
    }
    if let Some(webhook) = &features.webhook {
        literal(env::WEBHOOK_URL, webhook.url.clone());
        if let Some(events) = &webhook.events {
            literal(env::WEBHOOK_EVENTS, events.clone());
        }
    }
    if let Some(demo) = features.demo {
        literal(env::DEMO, demo.to_string());
    }
    for (name, value) in &features.limits {
        literal(name, value.clone());
    }

    let mut secret = |name, reference: &SecretRef| {
        vars.push(ServerEnvVar {
            name,
            value: EnvValue::Secret(reference.clone()),
        })
    };
    if let Auth::Tokens {
        keys: TokenKeys::SharedSecret(reference),
        ..
    } = &server.auth
    {
        secret(env::JWT_SECRET, reference);
    }
    if let Storage::Postgres { connection, .. } = &server.storage {
        match connection {
            PostgresConnection::Url(reference) => secret(env::DATABASE_URL, reference),
            PostgresConnection::Parts {
                host,
                port,
                database,
                user,
                password,
            } => {
                secret(env::DATABASE_HOST, host);
                if let DatabaseName::Secret(reference) = database {
                    secret(env::DATABASE_NAME, reference);
                }
                let optional = [
                    (env::DATABASE_PORT, port),
                    (env::DATABASE_USER, user),
                    (env::DATABASE_PASSWORD, password),
                ];
                for (name, reference) in optional {
                    if let Some(reference) = reference {
                        secret(name, reference);
                    }
                }
            }
        }
    }
    if let Some((reference, _)) = &features.api {
        secret(env::API_SECRET, reference);
    }
    if let Some(reference) = features
        .webhook
        .as_ref()
        .and_then(|webhook| webhook.secret.as_ref())
    {
        secret(env::WEBHOOK_SECRET, reference);
    }
    match &server.redis {
        Some(Redis::External { url }) => secret(env::REDIS_URL, url),
        Some(Redis::Managed(managed)) => secret(env::REDIS_URL, &managed.url),
        None => {}
    }
    vars
}
