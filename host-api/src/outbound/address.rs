//! Which resolved addresses an outbound request may connect to: the one
//! rule, for every way a request leaves.
//!
//! `allowed_outbound_hosts` names hosts, but a name resolves to whatever
//! its DNS says. A public name can point at the host's own loopback (the
//! admin API, Mayfly's own port, where a fresh request would escape the
//! hop limit), at a private network, or at a cloud metadata service on a
//! link-local address. Such addresses are reached only when the grant
//! names them: an IP literal, `localhost`, or `allow_private_networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public, or `None` if it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => non_public_v4(mapped),
            None => non_public_v6(ip),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() || a == 0 {
        "unspecified"
    } else if ip.is_private() {
        "private"
    } else if a == 100 && (64..128).contains(&b) {
        "shared (carrier-grade NAT)"
    } else if ip.is_link_local() {
        "link-local"
    } else if (a, b, c) == (192, 0, 0) {
        // Protocol assignments: NAT64 discovery, DS-Lite, and a cloud
        // metadata service (192.0.0.192).
        "special-purpose"
    } else if a == 198 && (b == 18 || b == 19) {
        // Benchmarking; also where tunnelling proxies put their fake IPs.
        "special-purpose"
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        "documentation"
    } else if (a, b, c) == (192, 88, 99) {
        "special-purpose (6to4 relay)"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "not unicast"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "private (unique local)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if ip.is_multicast() {
        "not unicast"
    } else if let Some(v4) = embedded_v4(ip) {
        return non_public_v4(v4);
    } else if s[0] & 0xe000 != 0x2000 {
        // Only 2000::/3 is global unicast: the rest (site-local fec0::/10,
        // the local-use NAT64 prefix 64:ff9b:1::/48, discard 100::/64...)
        // is not public.
        "not global unicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        // Protocol assignments, Teredo tunnels (2001::/32) among them.
        "special-purpose"
    } else {
        return None;
    })
}

/// The IPv4 address inside an IPv4-compatible (`::a.b.c.d`), well-known
/// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address, which reach it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(v4(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(v4(s[1], s[2]))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<&'static str> {
        non_public(ip.parse().unwrap())
    }

    #[test]
    fn what_is_not_public() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.1.2.3", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:101::1", "private"),
            ("fd00::1", "private (unique local)"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("224.0.0.1", "not unicast"),
            ("255.255.255.255", "not unicast"),
            ("ff02::1", "not unicast"),
            ("192.0.0.192", "special-purpose"),
            ("198.18.0.1", "special-purpose"),
            ("198.19.255.255", "special-purpose"),
            ("192.0.2.1", "documentation"),
            ("203.0.113.9", "documentation"),
            ("2001:db8::1", "documentation"),
            ("2001::1", "special-purpose"),
            ("fec0::1", "not global unicast"),
            ("64:ff9b:1::a00:1", "not global unicast"),
            ("100::1", "not global unicast"),
            ("64:ff9b::808:808", "public"),
        ] {
            let expected = (why != "public").then_some(why);
            assert_eq!(class(ip), expected, "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }
}
