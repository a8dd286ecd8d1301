//! Admission of new sockets: the connection limit and the per-address limit, counted when the
//! upgrade is accepted (not when the socket task starts, so a burst cannot overshoot them).
//!
//! The client's address is the peer's, unless the peer is a trusted proxy
//! (`COLLAB_SERVER_TRUSTED_PROXIES`): then it is the right-most address of `X-Forwarded-For`
//! that is not itself a trusted proxy. A header from anyone else is ignored, so a client cannot
//! pick the address it is counted under.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct AdmissionConfig {
    pub max_connections: usize,
    /// 0: no per-address limit.
    pub max_connections_per_ip: usize,
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections")]
    Full,
    #[error("too many connections from this address")]
    PerAddress,
}

impl Refused {
    pub fn kind(self) -> &'static str {
        match self {
            Refused::Full => "connection_limit",
            Refused::PerAddress => "address_limit",
        }
    }
}

pub struct Admission {
    config: AdmissionConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted socket; dropping it gives its places back.
pub struct Ticket {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(count) = state.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }

    /// The address a socket is counted under.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }

    /// Admits one socket from `ip`, or says which limit it hits.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let mut state = self.lock();
        if state.total >= self.config.max_connections {
            return Err(Refused::Full);
        }
        let per_ip = state.per_ip.get(&ip).copied().unwrap_or(0);
        if self.config.max_connections_per_ip > 0 && per_ip >= self.config.max_connections_per_ip {
            return Err(Refused::PerAddress);
        }
        state.total += 1;
        *state.per_ip.entry(ip).or_insert(0) += 1;
        drop(state);
        Ok(Ticket {
            admission: self.clone(),
            ip,
        })
    }

    pub fn admitted(&self) -> usize {
        self.lock().total
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn admission(per_ip: usize, trusted: &[&str]) -> Arc<Admission> {
        Admission::new(AdmissionConfig {
            max_connections: 3,
            max_connections_per_ip: per_ip,
            trusted_proxies: trusted.iter().map(|t| t.parse().expect("net")).collect(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn limits_are_counted_at_admission_and_given_back_on_drop() {
        let admission = admission(2, &[]);
        let a = admission.admit(ip("10.0.0.1")).expect("first");
        let b = admission.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(
            admission.admit(ip("10.0.0.1")).err(),
            Some(Refused::PerAddress)
        );
        let c = admission.admit(ip("10.0.0.2")).expect("other address");
        assert_eq!(admission.admit(ip("10.0.0.3")).err(), Some(Refused::Full));
        drop(a);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
        drop((b, c));
        assert_eq!(admission.admitted(), 0);
        assert!(admission.lock().per_ip.is_empty());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 5.6.7.8, 10.1.0.9"),
        );
        let untrusted = admission(1, &[]);
        assert_eq!(
            untrusted.client_ip(ip("10.1.0.7"), &headers),
            ip("10.1.0.7"),
            "anyone's header is ignored"
        );
        let behind_alb = admission(1, &["10.1.0.0/16"]);
        // The right-most address that is not a trusted proxy: the client the ALB saw.
        assert_eq!(
            behind_alb.client_ip(ip("10.1.0.7"), &headers),
            ip("5.6.7.8")
        );
        assert_eq!(
            behind_alb.client_ip(ip("::ffff:10.1.0.7"), &HeaderMap::new()),
            ip("10.1.0.7"),
            "no header: the proxy itself"
        );
    }
}
