//! Where the service may send a webhook (api.md, Notifications; issue 17, part 4). A webhook
//! URL is chosen by a clinic's administrator, and the service posts to it from inside the
//! deployment's network: unchecked, it would let whoever sets one reach the database, a cloud
//! metadata service or any private host. In production a URL is `https` and every address it
//! resolves to is public; outside production loopback and private hosts are allowed, for
//! development and tests. The address rule is checked on the addresses actually connected to
//! (see `delivery`), so a name that changes what it resolves to gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::RuleBroken;

/// The longest URL stored.
pub const MAX_URL_CHARS: usize = 2000;

/// Where a deployment may send webhooks (`KO_WEBHOOK_EGRESS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// `https` only, to public addresses only: production's rule, and its only one.
    Public,
    /// `http` or `https`, to any address (loopback included): for development.
    Any,
    /// `http` or `https` to this host only (a loopback address, or `localhost`, which is
    /// never looked up): for tests and CI, which must reach nothing else.
    Loopback,
}

/// A webhook URL that passed the rules that need no name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses `text` under `egress`: absolute `http(s)`, no credentials or fragment, a host,
    /// and in production `https` and, for an address written out, a public one.
    pub fn parse(text: &str, egress: Egress) -> Result<Self, RuleBroken> {
        let broken = |rule: &str| RuleBroken::new("url", rule);
        if text.is_empty() || text.chars().count() > MAX_URL_CHARS {
            return Err(broken("must be 1 to 2000 characters"));
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(broken("must not contain spaces or control characters"));
        }
        let url = Url::parse(text).map_err(|e| broken(&format!("is not a URL: {e}")))?;
        match (url.scheme(), egress) {
            ("https", _) | ("http", Egress::Any | Egress::Loopback) => {}
            ("http", Egress::Public) => return Err(broken("must be https in production")),
            _ => return Err(broken("must be an http or https URL")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(broken("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(broken("must not have a fragment"));
        }
        let address = match url.host() {
            None => return Err(broken("must name a host")),
            Some(Host::Domain(name)) if egress == Egress::Loopback && name != "localhost" => {
                return Err(broken("must be a loopback address or localhost here"))
            }
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(reason) = address.and_then(|a| refused_under(egress, a)) {
            return Err(broken(&format!("is {reason}")));
        }
        // Parsing percent-encodes and punycodes: the stored form must fit too.
        if url.as_str().chars().count() > MAX_URL_CHARS {
            return Err(broken("must be 1 to 2000 characters once encoded"));
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL as someone who reads but does not manage the endpoint sees it: its origin
    /// only, since receivers often carry a token in the path or query.
    pub fn origin_only(&self) -> String {
        let origin = self.0.origin().ascii_serialization();
        let rest = &self.0[url::Position::BeforePath..];
        if rest.is_empty() || rest == "/" {
            format!("{origin}/")
        } else {
            format!("{origin}/…")
        }
    }

    /// The host name to resolve, when the URL names one rather than an address.
    pub fn domain(&self) -> Option<&str> {
        self.0.domain()
    }
}

/// Why `egress` refuses to connect to `address`, or `None` when it may.
pub fn refused_under(egress: Egress, address: IpAddr) -> Option<String> {
    match egress {
        Egress::Public => {
            refused(address).map(|reason| format!("{reason}, which production refuses"))
        }
        Egress::Any => None,
        Egress::Loopback => {
            let loopback = match address {
                IpAddr::V4(v4) => v4.is_loopback(),
                IpAddr::V6(v6) => {
                    v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            };
            (!loopback).then(|| "not a loopback address, which this deployment refuses".to_owned())
        }
    }
}

/// Why production refuses `address`: every range that is not the public internet — this
/// host, private networks, link-local (where cloud metadata services answer), shared and
/// reserved ranges — and an IPv6 address that embeds a refused IPv4 one.
pub fn refused(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [b0, b1, b2, _] = a.octets();
    let reason = if a.is_loopback() {
        "a loopback address"
    } else if a.is_private() {
        "a private address"
    } else if a.is_link_local() {
        "a link-local address (where cloud metadata services answer)"
    } else if b0 == 0 || a.is_broadcast() || b0 >= 240 {
        "a reserved address"
    } else if b0 == 100 && (64..128).contains(&b1) {
        "a shared (carrier-grade NAT) address"
    } else if a.is_multicast() {
        "a multicast address"
    } else if a.is_documentation() || (b0 == 198 && (b1 == 18 || b1 == 19)) {
        "a documentation or benchmarking address"
    } else if b0 == 192 && b1 == 0 && b2 == 0 {
        "a protocol-assignment address"
    } else {
        return None;
    };
    Some(reason)
}

fn refused_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    // An IPv4 address written in IPv6 form (mapped, compatible, NAT64) reaches that IPv4 host.
    let embedded = |hi: usize| {
        Ipv4Addr::new(
            (s[hi] >> 8) as u8,
            s[hi] as u8,
            (s[hi + 1] >> 8) as u8,
            s[hi + 1] as u8,
        )
    };
    if let Some(v4) = a.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let reason = if a.is_loopback() {
        "a loopback address"
    } else if a.is_unspecified() {
        "a reserved address"
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated): ::a.b.c.d
        return refused_v4(embedded(6));
    } else if s[..6] == [0, 0, 0, 0, 0xffff, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // IPv4-translated (SIIT, ::ffff:0:a.b.c.d) and NAT64's well-known prefix.
        return refused_v4(embedded(6));
    } else if s[0] == 0x2002 {
        // 6to4 carries its IPv4 host in the next 32 bits.
        return refused_v4(embedded(1));
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a private (unique local) address"
    } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        "a link-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x64 && s[1] == 0xff9b)
        || s[..4] == [0x100, 0, 0, 0]
    {
        "a tunnel, translation or discard address"
    } else {
        return None;
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17, acceptance: production refuses loopback, link-local, private and metadata
    /// addresses — in IPv4, IPv6 and IPv4 embedded in IPv6 — and allows public ones.
    #[test]
    fn production_refuses_every_address_that_is_not_public() {
        let refused_cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link-local"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("100.100.100.200", "shared"),
            ("0.0.0.0", "reserved"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("224.0.0.1", "multicast"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::1", "loopback"),
            ("::", "reserved"),
            ("fd00::1", "unique local"),
            ("fd00:ec2::254", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("::ffff:0:7f00:1", "loopback"),
            ("64:ff9b:1::a9fe:a9fe", "translation"),
            ("2002:a00:1::1", "private"),
            ("2001:0:4136:e378::1", "tunnel"),
        ];
        for (text, why) in refused_cases {
            let address: IpAddr = text.parse().unwrap();
            let reason = refused(address).unwrap_or_else(|| panic!("{text} was allowed"));
            assert!(reason.contains(why), "{text}: {reason}");
            assert_eq!(refused_under(Egress::Any, address), None, "{text}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(refused(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn a_url_is_https_without_credentials_in_production() {
        let cases = [
            ("https://hooks.example.org/ketamine", Egress::Public, None),
            (
                "http://hooks.example.org/",
                Egress::Public,
                Some("https in production"),
            ),
            ("http://127.0.0.1:8080/hook", Egress::Any, None),
            ("https://127.0.0.1/hook", Egress::Public, Some("loopback")),
            (
                "https://[::ffff:169.254.169.254]/",
                Egress::Public,
                Some("link-local"),
            ),
            ("https://10.0.0.1/", Egress::Public, Some("private")),
            (
                "https://user:pw@hooks.example.org/",
                Egress::Public,
                Some("credentials"),
            ),
            (
                "https://hooks.example.org/#x",
                Egress::Public,
                Some("fragment"),
            ),
            (
                "ftp://hooks.example.org/",
                Egress::Any,
                Some("http or https"),
            ),
            ("file:///etc/passwd", Egress::Any, Some("http or https")),
            ("hooks.example.org", Egress::Any, Some("not a URL")),
            (
                "https://hooks.example.org/\u{7}",
                Egress::Any,
                Some("control"),
            ),
            ("https://hooks.example.org/ x", Egress::Any, Some("spaces")),
            ("", Egress::Any, Some("1 to 2000")),
        ];
        for (text, egress, refusal) in cases {
            let parsed = WebhookUrl::parse(text, egress);
            match (parsed, refusal) {
                (Ok(_), None) => {}
                (Err(broken), Some(why)) => {
                    assert_eq!(broken.field, "url");
                    assert!(broken.rule.contains(why), "{text}: {}", broken.rule);
                }
                (other, _) => panic!("{text} under {egress:?}: {other:?}"),
            }
        }
        for (text, allowed) in [
            ("http://127.0.0.1:8080/hook", true),
            ("https://[::1]/hook", true),
            ("http://localhost:8080/hook", true),
            ("http://10.0.0.1/hook", false),
            ("http://hooks.example.org/hook", false),
            ("http://[::ffff:8.8.8.8]/hook", false),
        ] {
            assert_eq!(
                WebhookUrl::parse(text, Egress::Loopback).is_ok(),
                allowed,
                "{text}"
            );
        }
        let pager = WebhookUrl::parse("https://pager.example:8443/h/T0KEN?key=s3cret", Egress::Any)
            .unwrap();
        assert_eq!(pager.origin_only(), "https://pager.example:8443/…");
        let bare = WebhookUrl::parse("https://pager.example/", Egress::Any).unwrap();
        assert_eq!(bare.origin_only(), "https://pager.example/");
        let encoded = format!("https://hooks.example.org/{}", "{".repeat(1000));
        assert!(WebhookUrl::parse(&encoded, Egress::Any)
            .unwrap_err()
            .rule
            .contains("once encoded"));
        let long = format!("https://hooks.example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert!(WebhookUrl::parse(&long, Egress::Any).is_err());
    }
}
