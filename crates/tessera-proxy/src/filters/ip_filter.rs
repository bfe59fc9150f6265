//! `ip_filter`: allow or deny clients by address (CIDR lists). Deny wins; with an allow list,
//! everything not on it is denied. The address is the TCP peer's.

use crate::plugin::{
    BuildContext, BuildError, Filter, Flow, HttpError, LocalResponse, RequestContext,
};
use async_trait::async_trait;
use http::StatusCode;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpFilterConfig {
    /// If not empty, only these networks are allowed (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// These networks are refused with 403.
    #[serde(default)]
    pub deny: Vec<String>,
}

pub struct IpFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

fn parse_nets(list: &[String], key: &str) -> Result<Vec<IpNet>, BuildError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    let mut e = BuildError::new(format!("{s:?} is not an address or CIDR network"));
                    e.path = e.path.index(i);
                    e.at(key)
                })
        })
        .collect()
}

impl IpFilter {
    pub fn build(cfg: IpFilterConfig, _ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        if cfg.allow.is_empty() && cfg.deny.is_empty() {
            return Err(BuildError::new("give an allow or a deny list"));
        }
        Ok(Self {
            allow: parse_nets(&cfg.allow, "allow")?,
            deny: parse_nets(&cfg.deny, "deny")?,
        })
    }

    fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[async_trait]
impl Filter for IpFilter {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        match req.client_ip {
            Some(ip) if self.permits(ip) => Ok(Flow::Continue),
            _ => Ok(Flow::Respond(LocalResponse::text(
                StatusCode::FORBIDDEN,
                "forbidden",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
        IpFilter {
            allow: parse_nets(
                &allow.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "allow",
            )
            .unwrap(),
            deny: parse_nets(
                &deny.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "deny",
            )
            .unwrap(),
        }
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let f = filter(&["10.0.0.0/8"], &["10.1.0.0/16"]);
        assert!(f.permits("10.2.3.4".parse().unwrap()));
        assert!(!f.permits("10.1.3.4".parse().unwrap()));
        assert!(!f.permits("192.168.1.1".parse().unwrap()));
        assert!(
            f.permits("::ffff:10.2.3.4".parse().unwrap()),
            "v4-mapped v6 counts as v4"
        );
        let f = filter(&[], &["127.0.0.1"]);
        assert!(!f.permits("127.0.0.1".parse().unwrap()));
        assert!(f.permits("127.0.0.2".parse().unwrap()));
    }
}
