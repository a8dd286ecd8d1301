//! Token verification and per-document authorization.
//!
//! `Authenticator::authorize(token, document)` runs once per (socket, document): a denial
//! affects that document only. Tokens are JWTs checked by `jsonwebtoken`: HS256 with a shared
//! secret, or RS/ES/PS algorithms with keys from a JWKS URL (Cognito included), cached by `kid`
//! and refetched when an unknown `kid` appears.
//!
//! Claims used for authorization:
//! * `docs`: optional array of patterns matched against the whole document name; `*` matches any
//!   run of characters (including `/`), everything else is literal. Absent = every document.
//! * `readonly`: the session may read, and its updates are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::config::{AuthConfig, KeySource};
use crate::protocol::Scope;

/// Don't ask the JWKS endpoint again within this interval for an unknown `kid`.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What a verified token grants on one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    pub subject: Option<String>,
}

/// Why a document was denied. The `Display` text is sent to the client as the reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    #[error("permission-denied: a token is required")]
    MissingToken,
    #[error("permission-denied: token expired")]
    Expired,
    #[error("permission-denied: invalid token ({0})")]
    InvalidToken(String),
    #[error("permission-denied: token signed by an unknown key")]
    UnknownKey,
    #[error("permission-denied: token does not grant document {0:?}")]
    DocumentNotAllowed(String),
    #[error("permission-denied: signing keys unavailable")]
    KeysUnavailable,
}

impl Denied {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Denied::MissingToken => "missing_token",
            Denied::Expired => "expired",
            Denied::InvalidToken(_) => "invalid_token",
            Denied::UnknownKey => "unknown_key",
            Denied::DocumentNotAllowed(_) => "document_not_allowed",
            Denied::KeysUnavailable => "keys_unavailable",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    docs: Option<Vec<String>>,
    #[serde(default)]
    readonly: bool,
    token_use: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    client_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// Checks tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Option<Arc<Verifier>>,
}

struct Verifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    cognito: bool,
}

enum Keys {
    Secret(DecodingKey),
    Jwks(Jwks),
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let inner = match config {
            AuthConfig::Anonymous => None,
            AuthConfig::Jwt {
                keys,
                issuer,
                audience,
                cognito,
            } => Some(Arc::new(Verifier {
                keys: match keys {
                    KeySource::Secret(secret) => {
                        Keys::Secret(DecodingKey::from_secret(secret.expose().as_bytes()))
                    }
                    KeySource::Jwks { url } => Keys::Jwks(Jwks {
                        url: url.clone(),
                        http: reqwest::Client::builder()
                            .timeout(JWKS_FETCH_TIMEOUT)
                            .build()
                            .unwrap_or_default(),
                        keys: RwLock::default(),
                        last_fetch: Mutex::default(),
                    }),
                },
                issuer: issuer.clone(),
                audience: audience.clone(),
                cognito: *cognito,
            })),
        };
        Self { inner }
    }

    /// Whether clients must present a token.
    pub fn is_required(&self) -> bool {
        self.inner.is_some()
    }

    /// Verifies `token` and decides what it grants on `document`.
    pub async fn authorize(&self, token: &str, document: &str) -> Result<Grant, Denied> {
        let Some(verifier) = &self.inner else {
            return Ok(Grant {
                scope: Scope::ReadWrite,
                subject: None,
            });
        };
        if token.is_empty() {
            return Err(Denied::MissingToken);
        }
        let claims = verifier.verify(token).await?;
        if let Some(patterns) = &claims.docs
            && !patterns.iter().any(|p| pattern_matches(p, document))
        {
            return Err(Denied::DocumentNotAllowed(document.to_owned()));
        }
        Ok(Grant {
            scope: if claims.readonly {
                Scope::ReadOnly
            } else {
                Scope::ReadWrite
            },
            subject: claims.sub,
        })
    }
}

impl Verifier {
    async fn verify(&self, token: &str) -> Result<Claims, Denied> {
        let header = decode_header(token).map_err(|e| Denied::InvalidToken(e.to_string()))?;
        let (algorithm, key) = match &self.keys {
            Keys::Secret(key) => {
                if !matches!(
                    header.alg,
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
                ) {
                    return Err(Denied::InvalidToken(format!(
                        "algorithm {:?} not accepted with a shared secret",
                        header.alg
                    )));
                }
                (header.alg, key.clone())
            }
            Keys::Jwks(jwks) => jwks.key_for(header.kid.as_deref(), header.alg).await?,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Denied::Expired,
                _ => Denied::InvalidToken(e.to_string()),
            })?
            .claims;
        if self.cognito {
            match claims.token_use.as_deref() {
                Some("id" | "access") => {}
                other => {
                    return Err(Denied::InvalidToken(format!(
                        "token_use must be id or access, got {other:?}"
                    )));
                }
            }
        }
        if let Some(audience) = &self.audience {
            let by_aud = claims.aud.as_ref().is_some_and(|a| a.contains(audience));
            let by_client_id = claims.client_id.as_deref() == Some(audience.as_str());
            if !by_aud && !by_client_id {
                return Err(Denied::InvalidToken("audience mismatch".into()));
            }
        }
        Ok(claims)
    }
}

impl Jwks {
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Algorithm, DecodingKey), Denied> {
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(Denied::InvalidToken(
                "HMAC tokens are not accepted with JWKS".into(),
            ));
        }
        if let Some(found) = self.lookup(kid, alg).await {
            return Ok(found);
        }
        self.refresh().await?;
        self.lookup(kid, alg).await.ok_or(Denied::UnknownKey)
    }

    async fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<(Algorithm, DecodingKey)> {
        let keys = self.keys.read().await;
        match kid {
            Some(kid) => keys.get(kid).cloned().map(|(_, key)| (alg, key)),
            None => keys.values().find(|(a, _)| *a == alg).cloned(),
        }
    }

    /// Fetches the key set, at most once per [`JWKS_REFETCH_INTERVAL`].
    async fn refresh(&self) -> Result<(), Denied> {
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return Ok(());
        }
        *last_fetch = Some(Instant::now());
        let set: JwkSet = match self.fetch().await {
            Ok(set) => set,
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "failed to fetch JWKS");
                return Err(Denied::KeysUnavailable);
            }
        };
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                .unwrap_or(Algorithm::RS256);
            keys.insert(kid, (alg, key));
        }
        tracing::info!(url = %self.url, keys = keys.len(), "fetched JWKS");
        *self.keys.write().await = keys;
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

/// Whole-name match where `*` matches any run of characters (including `/`).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let remaining: Vec<&str> = parts.collect();
    let Some((last, middle)) = remaining.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::config::Secret;

    fn hs256(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn authenticator(secret: &str) -> Authenticator {
        Authenticator::new(&AuthConfig::Jwt {
            keys: KeySource::Secret(secret.parse::<Secret>().expect("infallible")),
            issuer: None,
            audience: None,
            cognito: false,
        })
    }

    #[test]
    fn patterns_match_whole_names() {
        assert!(pattern_matches("team/*", "team/a/b"));
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a*c", "abc"));
        assert!(pattern_matches("a*c", "ac"));
        assert!(pattern_matches("*-draft", "x/y-draft"));
        assert!(!pattern_matches("team/*", "other/team/a"));
        assert!(!pattern_matches("doc", "doc2"));
        assert!(!pattern_matches("a*a", "a"));
        assert!(pattern_matches("a.b", "a.b"));
        assert!(!pattern_matches("a.b", "axb"), "only * is special");
    }

    proptest! {
        #[test]
        fn a_literal_pattern_matches_only_itself(name in "[a-z/.]{0,12}", other in "[a-z/.]{0,12}") {
            prop_assert!(pattern_matches(&name, &name));
            prop_assert_eq!(pattern_matches(&name, &other), name == other);
        }

        #[test]
        fn prefix_star_matches_every_extension(prefix in "[a-z/]{0,8}", rest in "\\PC{0,12}") {
            let pattern = format!("{prefix}*");
            let name = format!("{prefix}{rest}");
            prop_assert!(pattern_matches(&pattern, &name));
        }
    }

    #[tokio::test]
    async fn valid_token_grants_read_write() {
        let auth = authenticator("s3cret");
        let token = hs256("s3cret", json!({"sub": "u1", "exp": now() + 60}));
        let grant = auth.authorize(&token, "doc").await.expect("granted");
        assert_eq!(grant.scope, Scope::ReadWrite);
        assert_eq!(grant.subject.as_deref(), Some("u1"));
    }

    #[tokio::test]
    async fn bad_tokens_are_denied_with_a_reason() {
        let auth = authenticator("s3cret");
        let wrong = hs256("other", json!({"exp": now() + 60}));
        assert!(matches!(
            auth.authorize(&wrong, "d").await,
            Err(Denied::InvalidToken(_))
        ));
        let expired = hs256("s3cret", json!({"exp": now() - 120}));
        assert_eq!(auth.authorize(&expired, "d").await, Err(Denied::Expired));
        let no_exp = hs256("s3cret", json!({"sub": "x"}));
        assert!(matches!(
            auth.authorize(&no_exp, "d").await,
            Err(Denied::InvalidToken(_))
        ));
        assert_eq!(auth.authorize("", "d").await, Err(Denied::MissingToken));
        assert!(matches!(
            auth.authorize("garbage", "d").await,
            Err(Denied::InvalidToken(_))
        ));
    }

    #[tokio::test]
    async fn docs_claim_limits_documents_and_readonly_limits_writes() {
        let auth = authenticator("k");
        let token = hs256(
            "k",
            json!({"exp": now() + 60, "docs": ["team/*", "shared"], "readonly": true}),
        );
        assert_eq!(
            auth.authorize(&token, "team/plan")
                .await
                .expect("granted")
                .scope,
            Scope::ReadOnly
        );
        assert!(auth.authorize(&token, "shared").await.is_ok());
        assert_eq!(
            auth.authorize(&token, "private").await,
            Err(Denied::DocumentNotAllowed("private".into()))
        );
    }

    #[tokio::test]
    async fn anonymous_mode_grants_everything() {
        let auth = Authenticator::new(&AuthConfig::Anonymous);
        assert!(!auth.is_required());
        assert_eq!(
            auth.authorize("", "x").await.expect("granted").scope,
            Scope::ReadWrite
        );
    }

    #[tokio::test]
    async fn issuer_and_audience_are_enforced() {
        let auth = Authenticator::new(&AuthConfig::Jwt {
            keys: KeySource::Secret("k".parse().expect("infallible")),
            issuer: Some("https://issuer".into()),
            audience: Some("app".into()),
            cognito: false,
        });
        let good = hs256(
            "k",
            json!({"exp": now() + 60, "iss": "https://issuer", "aud": "app"}),
        );
        assert!(auth.authorize(&good, "d").await.is_ok());
        let cognito_access = hs256(
            "k",
            json!({"exp": now() + 60, "iss": "https://issuer", "client_id": "app"}),
        );
        assert!(auth.authorize(&cognito_access, "d").await.is_ok());
        let wrong_iss = hs256("k", json!({"exp": now() + 60, "iss": "x", "aud": "app"}));
        assert!(auth.authorize(&wrong_iss, "d").await.is_err());
        let wrong_aud = hs256(
            "k",
            json!({"exp": now() + 60, "iss": "https://issuer", "aud": "other"}),
        );
        assert!(auth.authorize(&wrong_aud, "d").await.is_err());
    }
}
