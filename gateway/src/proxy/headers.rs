//! Header rules: request ids, client address, forwarding headers and hop-by-hop stripping.

use std::net::IpAddr;

use http::header::{HeaderName, CONNECTION, UPGRADE};
use http::HeaderMap;
use ipnet::IpNet;

// Parsed names, so that inserting them into Pingora's header maps parses nothing (pingora-http
// patch 5) and cloning them copies no bytes.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the non-standard ones proxies also drop.
/// `Transfer-Encoding` is absent on purpose: Pingora owns message framing and rewrites it.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
];

/// Keep a client's request id when it is sane, else mint a UUIDv7 (sortable by time).
pub(crate) fn request_id(incoming: Option<&[u8]>) -> String {
    match incoming {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.iter().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')
                }) =>
        {
            // Checked to be ASCII just above.
            String::from_utf8_lossy(v).into_owned()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// Every `X-Forwarded-For` line joined in order (`None` when there is none). Borrowed when
/// there is one valid line, the common case. Bytes that are not UTF-8 (a client may put any
/// in the part a proxy extends) spoil only their own entry, not the entries after it.
pub(crate) fn forwarded_for(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    let mut lines = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let first = lines.next()?;
    let mut joined: Option<String> = None;
    for line in lines {
        let j = joined.get_or_insert_with(|| first.clone().into_owned());
        j.push_str(", ");
        j.push_str(&line);
    }
    Some(joined.map_or(first, std::borrow::Cow::Owned))
}

/// The key a client's requests are counted under: its IPv4 address, or for IPv6 the
/// network of `v6_prefix` bits around it (one subscriber usually holds a whole /64 and can
/// pick any address in it). IPv4-mapped IPv6 addresses count as the IPv4 address.
pub(crate) fn client_key(ip: IpAddr, v6_prefix: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match ipnet::Ipv6Net::new(v6, v6_prefix) {
            Ok(net) => net.trunc().to_string(),
            Err(_) => v6.to_string(),
        },
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    xff: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(xff) = xff else { return Some(peer) };
    let mut client = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A garbled entry ends the chain of trust; the last good hop is the answer.
            Err(_) => break,
        }
    }
    Some(client)
}

/// The hop-by-hop headers present in `headers`, including those named by `Connection`. A
/// WebSocket-style upgrade handshake keeps its `Connection: upgrade` and `Upgrade`.
///
/// Returned rather than removed because Pingora's header types keep a case-preserving name
/// map beside the `HeaderMap`; removal must go through their `remove_header`.
pub(crate) fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    // One pass over the names present (a handful) instead of a hashed lookup per candidate:
    // most messages carry none of these, and this runs on every response.
    let (mut any, mut upgrade) = (false, false);
    for name in headers.keys() {
        upgrade |= name == UPGRADE;
        any |= HOP_BY_HOP.contains(&name.as_str());
    }
    if !any {
        return Vec::new();
    }
    let upgrading = upgrade
        && headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.to_ascii_lowercase().contains("upgrade"))
        });
    if upgrading {
        return Vec::new();
    }
    let mut names: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    names.extend(
        headers
            .keys()
            .filter(|n| HOP_BY_HOP.contains(&n.as_str()))
            .cloned(),
    );
    names
}

/// What the upstream request should say about the original request.
pub(crate) struct Forwarded<'a> {
    pub(crate) peer: Option<IpAddr>,
    pub(crate) peer_trusted: bool,
    pub(crate) host: Option<&'a str>,
    pub(crate) request_id: &'a str,
    /// The request arrived over TLS (the HTTPS listener).
    pub(crate) tls: bool,
}

/// The header of a response the gateway writes itself (an error, a `respond:` answer, a
/// redirect to HTTPS): the status, `X-Request-Id` and, over TLS, HSTS. Callers add the rest.
pub(crate) fn own_response(
    status: u16,
    request_id: &str,
    hsts: Option<http::HeaderValue>,
) -> pingora::Result<pingora::http::ResponseHeader> {
    let mut header = pingora::http::ResponseHeader::build(status, Some(6))?;
    header.insert_header(X_REQUEST_ID, request_id)?;
    if let Some(hsts) = hsts {
        header.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts)?;
    }
    Ok(header)
}

/// `Strict-Transport-Security` for a response over TLS when `tls.hsts` is configured (never
/// over plain HTTP, where browsers ignore it and it would only mislead).
pub(crate) fn hsts(
    runtime: Option<&crate::runtime::Runtime>,
    tls: bool,
) -> Option<http::HeaderValue> {
    let value = runtime?.config.tls.as_ref()?.hsts.clone()?;
    tls.then_some(value)
}

/// Apply the forwarding headers to the request that goes upstream. Values a client sent are
/// kept only when it is a trusted proxy; otherwise they are replaced, never appended to.
pub(crate) fn set_forwarded(
    req: &mut pingora::http::RequestHeader,
    f: &Forwarded<'_>,
) -> pingora::Result<()> {
    let xff = match (f.peer, f.peer_trusted) {
        (Some(peer), true) => match forwarded_for(&req.headers) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {peer}"),
            _ => peer.to_string(),
        },
        (Some(peer), false) => peer.to_string(),
        (None, _) => String::new(),
    };
    if xff.is_empty() {
        req.remove_header(&X_FORWARDED_FOR);
    } else {
        req.insert_header(X_FORWARDED_FOR, xff)?;
    }
    if !(f.peer_trusted && req.headers.contains_key(X_FORWARDED_PROTO)) {
        req.insert_header(X_FORWARDED_PROTO, if f.tls { "https" } else { "http" })?;
    }
    if !(f.peer_trusted && req.headers.contains_key(X_FORWARDED_HOST)) {
        match f.host {
            Some(host) => req.insert_header(X_FORWARDED_HOST, host)?,
            None => {
                req.remove_header(&X_FORWARDED_HOST);
            }
        }
    }
    req.insert_header(X_REQUEST_ID, f.request_id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn request_id_is_kept_when_well_formed_and_minted_otherwise() {
        assert_eq!(request_id(Some(b"abc-123")), "abc-123");
        let minted = request_id(Some(b"bad id with spaces"));
        assert_eq!(uuid::Uuid::parse_str(&minted).unwrap().get_version_num(), 7);
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn client_ip_ignores_forwarded_for_from_untrusted_peers() {
        let ip = client_ip(
            Some("203.0.113.9".parse().unwrap()),
            Some("1.2.3.4"),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(ip, Some("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn client_ip_walks_forwarded_for_through_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        let ip = client_ip(
            Some("10.0.0.2".parse().unwrap()),
            Some("6.6.6.6, 1.2.3.4, 10.0.0.5"),
            &trusted,
        );
        assert_eq!(ip, Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_lines_are_joined_in_order() {
        let mut h = HeaderMap::new();
        assert!(forwarded_for(&h).is_none());
        h.append(X_FORWARDED_FOR, "1.1.1.1".parse().unwrap());
        assert_eq!(forwarded_for(&h).as_deref(), Some("1.1.1.1"));
        h.append(X_FORWARDED_FOR, "2.2.2.2, 3.3.3.3".parse().unwrap());
        assert_eq!(
            forwarded_for(&h).as_deref(),
            Some("1.1.1.1, 2.2.2.2, 3.3.3.3")
        );
    }

    #[test]
    fn a_non_utf8_entry_spoils_only_itself() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"6.6.6.6\xff, 203.0.113.7").unwrap(),
        );
        let xff = forwarded_for(&h);
        let client = client_ip(
            Some("10.0.0.2".parse().unwrap()),
            xff.as_deref(),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(client, Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_prefix_and_mapped_v4_as_v4() {
        let key = |s: &str, p| client_key(s.parse().unwrap(), p);
        assert_eq!(key("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::", 64), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::1", 128), "2001:db8:1:2::1/128");
        assert_eq!(key("::ffff:192.0.2.1", 64), "192.0.2.1");
        assert_eq!(key("192.0.2.1", 64), "192.0.2.1");
    }

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());

        let names = hop_by_hop(&h);

        for n in ["connection", "x-secret", "keep-alive"] {
            assert!(names.iter().any(|h| h == n), "{n} is hop-by-hop");
        }
        assert!(!names.iter().any(|h| h == "x-kept"));
    }

    #[test]
    fn forwarded_for_is_replaced_for_untrusted_peers_and_appended_for_trusted() {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(X_FORWARDED_FOR, "6.6.6.6").unwrap();
        let mut f = Forwarded {
            peer: Some("203.0.113.9".parse().unwrap()),
            peer_trusted: false,
            host: Some("example.com"),
            request_id: "rid",
            tls: false,
        };
        set_forwarded(&mut req, &f).unwrap();
        assert_eq!(req.headers.get(X_FORWARDED_FOR).unwrap(), "203.0.113.9");
        assert_eq!(req.headers.get(X_FORWARDED_PROTO).unwrap(), "http");

        f.peer_trusted = true;
        set_forwarded(&mut req, &f).unwrap();
        assert_eq!(
            req.headers.get(X_FORWARDED_FOR).unwrap(),
            "203.0.113.9, 203.0.113.9"
        );
        assert_eq!(req.headers.get(X_FORWARDED_HOST).unwrap(), "example.com");
        assert_eq!(req.headers.get(X_REQUEST_ID).unwrap(), "rid");
    }

    #[test]
    fn the_forwarded_proto_says_https_for_requests_over_tls() {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(X_FORWARDED_PROTO, "http").unwrap();
        let f = Forwarded {
            peer: Some("203.0.113.9".parse().unwrap()),
            peer_trusted: false,
            host: None,
            request_id: "rid",
            tls: true,
        };
        set_forwarded(&mut req, &f).unwrap();
        assert_eq!(req.headers.get(X_FORWARDED_PROTO).unwrap(), "https");
    }
}
