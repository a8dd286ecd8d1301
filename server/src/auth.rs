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

/// Don't ask the JWKS endpoint again within this interval for an unknown `kid` (a flood of
/// tokens with made-up key ids must not become a flood of fetches).
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch, the next token that needs the keys tries again after this.
const JWKS_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;
/// Longest token accepted; real ones (Cognito's included) are a few KB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a verified token grants on one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    pub subject: Option<String>,
    /// The token's `exp` (seconds since the epoch): the session ends then (plus the leeway).
    pub expires_at: Option<u64>,
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
    #[error("permission-denied: access revoked")]
    Revoked,
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
            Denied::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    /// When the token was issued: revocations affect tokens issued before them.
    iat: Option<u64>,
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
    /// Live revocations (`crate::revocation`), consulted after a token verifies.
    revocations: Arc<crate::revocation::Revocations>,
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
    /// By `kid`: the algorithm the JWK declares (if any) and the key.
    keys: RwLock<HashMap<String, (Option<Algorithm>, DecodingKey)>>,
    fetches: Mutex<FetchState>,
    refetch_interval: Duration,
    /// The last fetch's outcome: `None` before the first, else its error (with its cause).
    last_failure: std::sync::Mutex<Option<Option<String>>>,
}

#[derive(Default)]
struct FetchState {
    /// No fetch before this instant.
    not_before: Option<Instant>,
    /// Whether the last fetch failed.
    failed: bool,
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
                        fetches: Mutex::default(),
                        refetch_interval: JWKS_REFETCH_INTERVAL,
                        last_failure: std::sync::Mutex::default(),
                    }),
                },
                issuer: issuer.clone(),
                audience: audience.clone(),
                cognito: *cognito,
            })),
        };
        Self {
            inner,
            revocations: Arc::default(),
        }
    }

    /// Tests: refetch the JWKS for every unknown `kid`.
    #[cfg(test)]
    fn refetching_always(mut self) -> Self {
        if let Some(verifier) = self.inner.as_mut().and_then(Arc::get_mut)
            && let Keys::Jwks(jwks) = &mut verifier.keys
        {
            jwks.refetch_interval = Duration::ZERO;
        }
        self
    }

    /// With a JWKS (`JWKS_URL`, Cognito): fetches the key set now, so start-up says whether the
    /// keys can be had, and why not (`Err` with the cause). `None` without a JWKS.
    pub async fn prefetch_keys(&self) -> Option<Result<(), String>> {
        let Keys::Jwks(jwks) = &self.inner.as_ref()?.keys else {
            return None;
        };
        Some(match jwks.refresh().await {
            Ok(()) => Ok(()),
            Err(_) => Err(jwks
                .last_failure()
                .flatten()
                .unwrap_or_else(|| "the key set could not be fetched".to_owned())),
        })
    }

    /// With a JWKS: whether its last fetch worked (`None` before the first fetch, or without a
    /// JWKS).
    pub fn keys_healthy(&self) -> Option<bool> {
        let Keys::Jwks(jwks) = &self.inner.as_ref()?.keys else {
            return None;
        };
        jwks.last_failure().map(|failure| failure.is_none())
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
                expires_at: None,
            });
        };
        if token.is_empty() {
            return Err(Denied::MissingToken);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denied::InvalidToken(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let claims = verifier.verify(token).await?;
        if let Some(patterns) = &claims.docs
            && !patterns.iter().any(|p| pattern_matches(p, document))
        {
            return Err(Denied::DocumentNotAllowed(document.to_owned()));
        }
        let mut scope = if claims.readonly {
            Scope::ReadOnly
        } else {
            Scope::ReadWrite
        };
        if let Some(subject) = &claims.sub {
            match self.revocations.check(subject, claims.iat, document) {
                Some(crate::revocation::Mode::End) => return Err(Denied::Revoked),
                Some(crate::revocation::Mode::ReadOnly) => scope = Scope::ReadOnly,
                None => {}
            }
        }
        Ok(Grant {
            scope,
            subject: claims.sub,
            expires_at: claims.exp,
        })
    }

    /// Consults `revocations` from now on.
    pub fn with_revocations(mut self, revocations: Arc<crate::revocation::Revocations>) -> Self {
        self.revocations = revocations;
        self
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
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Denied::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    Denied::InvalidToken("token not valid yet (nbf)".into())
                }
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

    /// The key for a token's `kid` and `alg`; a key whose JWK declares another algorithm is
    /// not used.
    async fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<(Algorithm, DecodingKey)> {
        let keys = self.keys.read().await;
        let fits = |declared: &Option<Algorithm>| declared.is_none_or(|declared| declared == alg);
        let found = match kid {
            Some(kid) => keys.get(kid).filter(|(declared, _)| fits(declared)),
            None => keys.values().find(|(declared, _)| fits(declared)),
        };
        found.map(|(_, key)| (alg, key.clone()))
    }

    /// Fetches the key set, at most once per refetch interval (sooner after a failure).
    async fn refresh(&self) -> Result<(), Denied> {
        let mut fetches = self.fetches.lock().await;
        if fetches.not_before.is_some_and(|at| Instant::now() < at) {
            return if fetches.failed {
                Err(Denied::KeysUnavailable)
            } else {
                Ok(())
            };
        }
        let set: JwkSet = match self.fetch().await {
            Ok(set) => set,
            Err(error) => {
                let cause = crate::describe_error(&error);
                tracing::warn!(url = %self.url, error = %cause, "failed to fetch JWKS");
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Some(cause));
                *fetches = FetchState {
                    not_before: Some(Instant::now() + JWKS_RETRY_AFTER_FAILURE),
                    failed: true,
                };
                return Err(Denied::KeysUnavailable);
            }
        };
        *fetches = FetchState {
            not_before: Some(Instant::now() + self.refetch_interval),
            failed: false,
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
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            keys.insert(kid, (alg, key));
        }
        tracing::info!(url = %self.url, keys = keys.len(), "fetched JWKS");
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(None);
        *self.keys.write().await = keys;
        Ok(())
    }

    fn last_failure(&self) -> Option<Option<String>> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
        // Not valid yet: nbf past the leeway.
        let early = hs256("s3cret", json!({"exp": now() + 600, "nbf": now() + 120}));
        assert!(matches!(
            auth.authorize(&early, "d").await,
            Err(Denied::InvalidToken(reason)) if reason.contains("nbf")
        ));
        // alg "none": unsigned, whatever its claims say.
        // {"alg":"none","typ":"JWT"} . {"exp":4102444800} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjQxMDI0NDQ4MDB9.";
        assert!(matches!(
            auth.authorize(none, "d").await,
            Err(Denied::InvalidToken(_))
        ));
        // Oversized tokens are refused before any decoding.
        let huge = "a".repeat(64 * 1024);
        assert!(matches!(
            auth.authorize(&huge, "d").await,
            Err(Denied::InvalidToken(reason)) if reason.contains("longer")
        ));
        let valid = auth
            .authorize(&hs256("s3cret", json!({"exp": now() + 60})), "d")
            .await
            .expect("valid");
        assert_eq!(valid.expires_at, Some(now() + 60));
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

    mod jwks {
        //! RS256/ES256 through a JWKS endpoint (a local HTTP server), as with Cognito.
        use std::sync::Mutex as StdMutex;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::routing::get;

        use super::*;

        const ISSUER: &str = "https://cognito-idp.ap-northeast-1.amazonaws.com/pool";

        fn fixture(name: &str) -> String {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/jwks")
                .join(name);
            std::fs::read_to_string(&path).expect("fixture")
        }

        fn public_jwk(alg: &str) -> serde_json::Value {
            let all: serde_json::Value =
                serde_json::from_str(&fixture("public-jwks.json")).expect("json");
            all[alg].clone()
        }

        fn sign(alg: Algorithm, kid: &str, claims: serde_json::Value) -> String {
            let key = match alg {
                Algorithm::ES256 => {
                    EncodingKey::from_ec_pem(fixture("es256-private.pem").as_bytes())
                }
                _ => EncodingKey::from_rsa_pem(fixture("rs256-private.pem").as_bytes()),
            }
            .expect("key");
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_owned());
            encode(&header, &claims, &key).expect("encode")
        }

        fn claims(token_use: &str) -> serde_json::Value {
            json!({"sub": "u", "iss": ISSUER, "token_use": token_use, "exp": now() + 600})
        }

        /// A JWKS endpoint serving `keys`, counting its requests.
        struct Endpoint {
            url: String,
            keys: Arc<StdMutex<Vec<serde_json::Value>>>,
            hits: Arc<AtomicUsize>,
        }

        impl Endpoint {
            async fn start(keys: Vec<serde_json::Value>) -> Self {
                let keys = Arc::new(StdMutex::new(keys));
                let hits = Arc::new(AtomicUsize::new(0));
                let app = axum::Router::new().route(
                    "/.well-known/jwks.json",
                    get({
                        let (keys, hits) = (keys.clone(), hits.clone());
                        move || async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let keys = keys.lock().expect("lock").clone();
                            axum::Json(json!({ "keys": keys }))
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let url = format!(
                    "http://{}/.well-known/jwks.json",
                    listener.local_addr().expect("addr")
                );
                tokio::spawn(async move { axum::serve(listener, app).await });
                Self { url, keys, hits }
            }

            fn hits(&self) -> usize {
                self.hits.load(Ordering::SeqCst)
            }

            fn authenticator(&self) -> Authenticator {
                Authenticator::new(&AuthConfig::Jwt {
                    keys: KeySource::Jwks {
                        url: self.url.clone(),
                    },
                    issuer: Some(ISSUER.into()),
                    audience: None,
                    cognito: true,
                })
            }
        }

        #[tokio::test]
        async fn hmac_tokens_naming_a_public_key_are_refused() {
            // HS/RS confusion: an HS256 token whose "secret" is the RSA key's public part,
            // naming that key's kid. A JWKS verifier must never verify HMAC.
            let endpoint = Endpoint::start(vec![public_jwk("rs256")]).await;
            let auth = endpoint.authenticator();
            let public = public_jwk("rs256").to_string();
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rs-1".into());
            let forged = encode(
                &header,
                &claims("access"),
                &EncodingKey::from_secret(public.as_bytes()),
            )
            .expect("encode");
            assert!(auth.authorize(&forged, "d").await.is_err());
            let honest = sign(Algorithm::RS256, "rs-1", claims("access"));
            auth.authorize(&honest, "d")
                .await
                .expect("the real key verifies");
        }

        #[tokio::test]
        async fn keys_are_cached_and_refetched_when_a_new_kid_appears() {
            let endpoint = Endpoint::start(vec![public_jwk("es256")]).await;
            let auth = endpoint.authenticator().refetching_always();
            let es = sign(Algorithm::ES256, "es-1", claims("access"));
            assert_eq!(
                auth.authorize(&es, "d").await.expect("es256").scope,
                Scope::ReadWrite
            );
            assert_eq!(endpoint.hits(), 1);
            auth.authorize(&es, "d").await.expect("cached");
            assert_eq!(endpoint.hits(), 1, "a known kid needs no fetch");

            // Key rotation: a token signed by a key published after the first fetch.
            endpoint
                .keys
                .lock()
                .expect("lock")
                .push(public_jwk("rs256"));
            let rs = sign(Algorithm::RS256, "rs-1", claims("id"));
            auth.authorize(&rs, "d").await.expect("rs256 after refetch");
            assert_eq!(endpoint.hits(), 2);

            let unknown = sign(Algorithm::RS256, "rs-unknown", claims("id"));
            assert_eq!(auth.authorize(&unknown, "d").await, Err(Denied::UnknownKey));
            assert_eq!(endpoint.hits(), 3);
        }

        #[tokio::test]
        async fn unknown_kids_do_not_refetch_within_the_interval() {
            let endpoint = Endpoint::start(vec![public_jwk("es256")]).await;
            let auth = endpoint.authenticator();
            for _ in 0..3 {
                let unknown = sign(Algorithm::ES256, "made-up", claims("access"));
                assert_eq!(auth.authorize(&unknown, "d").await, Err(Denied::UnknownKey));
            }
            assert_eq!(endpoint.hits(), 1);
        }

        #[tokio::test]
        async fn cognito_claims_issuer_and_key_algorithm_are_checked() {
            let endpoint = Endpoint::start(vec![public_jwk("es256"), public_jwk("rs256")]).await;
            let auth = endpoint.authenticator();
            let refresh = sign(Algorithm::ES256, "es-1", claims("refresh"));
            assert!(matches!(
                auth.authorize(&refresh, "d").await,
                Err(Denied::InvalidToken(reason)) if reason.contains("token_use")
            ));
            let mut foreign = claims("id");
            foreign["iss"] = json!("https://elsewhere.example");
            let foreign = sign(Algorithm::ES256, "es-1", foreign);
            assert!(matches!(
                auth.authorize(&foreign, "d").await,
                Err(Denied::InvalidToken(_))
            ));
            // The RSA key's JWK says RS256: a PS256 token naming it is not verified with it.
            let ps = sign(Algorithm::PS256, "rs-1", claims("id"));
            assert_eq!(auth.authorize(&ps, "d").await, Err(Denied::UnknownKey));
            let expired = sign(
                Algorithm::RS256,
                "rs-1",
                json!({"iss": ISSUER, "token_use": "id", "exp": now() - 600}),
            );
            assert_eq!(auth.authorize(&expired, "d").await, Err(Denied::Expired));
        }

        #[tokio::test]
        async fn an_unreachable_jwks_denies_with_keys_unavailable() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
            drop(listener);
            let auth = Authenticator::new(&AuthConfig::Jwt {
                keys: KeySource::Jwks { url },
                issuer: None,
                audience: None,
                cognito: false,
            });
            let token = sign(Algorithm::ES256, "es-1", claims("id"));
            assert_eq!(
                auth.authorize(&token, "d").await,
                Err(Denied::KeysUnavailable)
            );
            assert_eq!(
                auth.authorize(&token, "d").await,
                Err(Denied::KeysUnavailable),
                "still unavailable while the retry back-off runs"
            );
        }
    }
}
