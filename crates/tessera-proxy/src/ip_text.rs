//! IP addresses as text, written without `core::fmt`: done for every request (the
//! `X-Forwarded-For` sent upstream, the access log's `client` and `upstream`), where
//! `to_string()` cost 1.6 k instructions of a proxied request's ~120 k
//! (`bench/proxy_instructions.sh`). The same text as `Display`; IPv6, rare at this edge, is
//! left to it.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// The longest IPv4 address as text: `255.255.255.255`.
pub const MAX_IPV4_LEN: usize = 15;

/// Append `ip` as its `Display` writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(octet));
            }
        }
        // Writing into a `String` does not fail.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Append `addr` as its `Display` writes it (`ip:port`, `[ip6]:port`).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v4.port()));
        }
        // Writing into a `String` does not fail.
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_address_is_written_as_display_writes_it(ip in any::<IpAddr>()) {
            let mut text = String::from("x");
            push_ip(&mut text, ip);
            prop_assert_eq!(text, format!("x{ip}"));
        }

        #[test]
        fn a_socket_address_is_written_as_display_writes_it(addr in any::<SocketAddr>()) {
            let mut text = String::new();
            push_socket_addr(&mut text, addr);
            prop_assert_eq!(text, addr.to_string());
        }
    }
}
