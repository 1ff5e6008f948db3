//! Which URLs the http gate lets through: allowed origins, and addresses that are not private.

use std::net::IpAddr;

/// A URL's origin: scheme, host and port, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: url::Host<String>,
    port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    /// The origin of an http(s) URL with no userinfo.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        Origin::of(&url)
    }

    /// The origin of a parsed URL; refuses other schemes and userinfo.
    pub fn of(url: &url::Url) -> Result<Origin, String> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with userinfo (user:password@) are not allowed".into());
        }
        let host = url.host().ok_or("the URL has no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        Ok(Origin { scheme: url.scheme().to_string(), host, port })
    }

    /// The IP address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
            url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
            url::Host::Domain(_) => None,
        }
    }
}

/// Whether the gate may connect to `ip`: public addresses always; loopback only when the
/// connection allows it; private, link-local (cloud metadata at 169.254.169.254),
/// unspecified, multicast and shared ranges never.
pub fn ip_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(a) => {
            if a.is_loopback() {
                return allow_loopback;
            }
            let [b0, b1, ..] = a.octets();
            !(a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || b0 == 0
                || (b0 == 100 && (64..128).contains(&b1)) // shared address space (CGNAT)
                || (b0 == 198 && (b1 == 18 || b1 == 19)) // benchmarking
                || b0 >= 240)
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped().or_else(|| embedded_ipv4(a)) {
                return ip_allowed(IpAddr::V4(v4), allow_loopback);
            }
            if a.is_loopback() {
                return allow_loopback;
            }
            let first = a.segments()[0];
            !(a.is_unspecified()
                || a.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// The IPv4 address an IPv6 address wraps, for the translation and tunnelling prefixes that a
/// router turns into a connection to that IPv4 address: NAT64 (`64:ff9b::/96`, RFC 6052, and
/// the local-use `64:ff9b:1::/48`, RFC 8215, whose address sits in the last 32 bits), 6to4
/// (`2002::/16`, RFC 3056, the address in bits 16 to 48) and the IPv4-compatible `::a.b.c.d`.
fn embedded_ipv4(a: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = a.segments();
    let last = || std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        return Some(last());
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !a.is_loopback() && !a.is_unspecified() {
        return Some(last());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Origin::parse("https://api.airtable.com").unwrap();
        assert_eq!(a, Origin::parse("https://api.airtable.com:443/v0/x?y=1").unwrap());
        assert_ne!(a, Origin::parse("http://api.airtable.com").unwrap());
        assert_ne!(a, Origin::parse("https://api.airtable.com.evil.test").unwrap());
        assert!(Origin::parse("https://user:pw@api.airtable.com").unwrap_err().contains("userinfo"));
        assert!(Origin::parse("file:///etc/passwd").is_err());
    }

    #[test]
    fn private_addresses_are_refused_and_loopback_needs_consent() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::",
            // NAT64 and 6to4 wrappers around private and metadata addresses.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::192.168.0.1",
            "2002:a9fe:a9fe::1",
            "2002:0a00:0001::",
            "::10.0.0.1",
        ] {
            assert!(!ip_allowed(ip.parse().unwrap(), true), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!ip_allowed(ip.parse().unwrap(), false), "{ip}");
            assert!(ip_allowed(ip.parse().unwrap(), true), "{ip}");
        }
        assert!(ip_allowed("52.1.2.3".parse().unwrap(), false));
        assert!(ip_allowed("2606:4700::1".parse().unwrap(), false));
        // Wrapped public addresses stay reachable; wrapped loopback needs consent.
        assert!(ip_allowed("64:ff9b::52.1.2.3".parse().unwrap(), false));
        assert!(ip_allowed("2002:3401:0203::".parse().unwrap(), false));
        assert!(!ip_allowed("64:ff9b::127.0.0.1".parse().unwrap(), false));
    }
}
