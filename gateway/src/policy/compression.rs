//! Response compression: which coding a client gets (RFC 9110 §12.5.3, q-values and `*`
//! included), whether a response qualifies, and the streaming encoders.

use std::io::Write as _;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use crate::config::edge::{Algorithm, Compression};

/// The coding to send: among the route's algorithms the one the client gives the highest
/// q-value (an unlisted coding takes the q of `*`, or is not acceptable); ties go to the
/// route's order. `None`: send the response as it is.
pub(crate) fn negotiate(
    algorithms: &[Algorithm],
    accept: Option<&HeaderValue>,
) -> Option<Algorithm> {
    let accept = accept?.to_str().ok()?;
    let mut best: Option<(Algorithm, u16)> = None;
    for &algorithm in algorithms {
        let q = quality(accept, algorithm.token());
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((algorithm, q));
        }
    }
    best.map(|(a, _)| a)
}

/// The q-value (in thousandths) `accept` gives `coding`.
fn quality(accept: &str, coding: &str) -> u16 {
    let mut star = None;
    for element in accept.split(',') {
        let mut params = element.split(';');
        let name = params.next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("q") {
                q = parse_q(v.trim());
            }
        }
        // An element with a malformed q-value is ignored.
        let Some(q) = q else { continue };
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// What the gateway does with one response of a route with `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not a response the policy applies to: leave it alone.
    Untouched,
    /// It could be compressed, but not for this client: add `Vary: Accept-Encoding` only.
    VaryOnly,
    Compress(Algorithm),
}

/// Whether this response gets compressed. `chosen` is what the client's `Accept-Encoding`
/// negotiated. Bodiless answers (HEAD, 1xx, 204, 304), partial content, responses already
/// encoded or marked `no-transform`, other media types, event streams, declared lengths under
/// `min_size` and HTTP/1.0 clients (no chunked framing for a body of unknown length) are sent
/// as they are.
pub(crate) fn plan(
    policy: &Compression,
    method: &Method,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    chosen: Option<Algorithm>,
) -> Plan {
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT;
    let encoded = headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let no_transform = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("no-transform"))
        });
    if bodiless || encoded || no_transform || !type_matches(policy, headers) {
        return Plan::Untouched;
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len < policy.min_size) {
        return Plan::Untouched;
    }
    match chosen {
        Some(a) if version != Version::HTTP_10 && version != Version::HTTP_09 => Plan::Compress(a),
        _ => Plan::VaryOnly,
    }
}

fn type_matches(policy: &Compression, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == "text/event-stream" {
        return false;
    }
    policy.content_types.iter().any(|t| {
        if t.ends_with('/') {
            media.starts_with(t.as_str())
        } else {
            media == *t
        }
    })
}

/// A streaming encoder: each chunk in gives what the encoder has produced so far (possibly
/// nothing), and `finish` the rest. Memory is the encoder's window, never the whole body.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// Levels chosen for a proxy's CPU budget: fast settings that still give most of the ratio.
const GZIP_LEVEL: u32 = 5;
const BROTLI_QUALITY: u32 = 4;
/// A 256 KiB window: a small fraction of the memory of brotli's default for a little ratio.
const BROTLI_WINDOW_BITS: u32 = 18;
const ZSTD_LEVEL: i32 = 3;

impl Encoder {
    pub(crate) fn new(algorithm: Algorithm) -> std::io::Result<Self> {
        Ok(match algorithm {
            Algorithm::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Algorithm::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW_BITS,
            ))),
            Algorithm::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?)
            }
        })
    }

    /// Compress `chunk`; returns the output produced so far.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(chunk)?;
                e.get_mut()
            }
            Encoder::Brotli(e) => {
                e.write_all(chunk)?;
                e.get_mut()
            }
            Encoder::Zstd(e) => {
                e.write_all(chunk)?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// End the stream; returns the remaining output (with the format's trailer).
    pub(crate) fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Algorithm; 3] = [Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip];

    fn pick(accept: &'static str) -> Option<Algorithm> {
        negotiate(&ALL, Some(&HeaderValue::from_static(accept)))
    }

    #[test]
    fn q_values_decide_and_ties_go_to_the_gateways_order() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Algorithm::Zstd));
        assert_eq!(pick("gzip, deflate, br"), Some(Algorithm::Brotli));
        assert_eq!(pick("gzip;q=1.0, br;q=0.5"), Some(Algorithm::Gzip));
        assert_eq!(pick("br;q=0, *;q=0.1"), Some(Algorithm::Zstd));
        assert_eq!(pick("*"), Some(Algorithm::Zstd));
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("identity;q=0, gzip;q=0.001"), Some(Algorithm::Gzip));
        assert_eq!(pick("GZIP;Q=0.5"), Some(Algorithm::Gzip));
        assert_eq!(
            pick("gzip;q=2, br;q=0.1"),
            Some(Algorithm::Brotli),
            "a bad q is ignored"
        );
        assert_eq!(pick(""), None);
        assert_eq!(negotiate(&ALL, None), None);
    }

    #[test]
    fn only_full_bodies_of_listed_types_and_enough_length_are_compressed() {
        let policy = Compression {
            algorithms: ALL.to_vec(),
            min_size: 1024,
            content_types: vec!["text/".into(), "application/json".into()],
        };
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        let json = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "5000"),
        ]);
        let gzip = Some(Algorithm::Gzip);
        let plan_for = |method: Method, version: Version, status: u16, h: &HeaderMap, chosen| {
            plan(
                &policy,
                &method,
                version,
                StatusCode::from_u16(status).unwrap(),
                h,
                chosen,
            )
        };

        assert_eq!(
            plan_for(Method::GET, Version::HTTP_11, 200, &json, gzip),
            Plan::Compress(Algorithm::Gzip)
        );
        assert_eq!(
            plan_for(Method::GET, Version::HTTP_2, 404, &json, gzip),
            Plan::Compress(Algorithm::Gzip)
        );
        assert_eq!(
            plan_for(Method::GET, Version::HTTP_11, 200, &json, None),
            Plan::VaryOnly
        );
        assert_eq!(
            plan_for(Method::GET, Version::HTTP_10, 200, &json, gzip),
            Plan::VaryOnly
        );
        for status in [204, 206, 304] {
            assert_eq!(
                plan_for(Method::GET, Version::HTTP_11, status, &json, gzip),
                Plan::Untouched,
                "{status}"
            );
        }
        assert_eq!(
            plan_for(Method::HEAD, Version::HTTP_11, 200, &json, gzip),
            Plan::Untouched
        );
        let cases = [
            headers(&[
                ("content-type", "application/json"),
                ("content-length", "100"),
            ]),
            headers(&[("content-type", "image/png")]),
            headers(&[("content-type", "text/event-stream")]),
            headers(&[("content-type", "text/html"), ("content-encoding", "gzip")]),
            headers(&[
                ("content-type", "text/html"),
                ("cache-control", "public, No-Transform"),
            ]),
            headers(&[]),
        ];
        for h in &cases {
            assert_eq!(
                plan_for(Method::GET, Version::HTTP_11, 200, h, gzip),
                Plan::Untouched,
                "{h:?}"
            );
        }
        let chunked_html = headers(&[("content-type", "text/html")]);
        assert_eq!(
            plan_for(Method::GET, Version::HTTP_11, 200, &chunked_html, gzip),
            Plan::Compress(Algorithm::Gzip),
            "no declared length: compressed"
        );
    }

    #[test]
    fn q_values_parse_by_the_grammar() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q(".5"), None);
    }

    #[test]
    fn every_encoder_round_trips_across_chunks() {
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(2000);
        for algorithm in ALL {
            let mut e = Encoder::new(algorithm).unwrap();
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(7000) {
                out.extend_from_slice(&e.push(chunk).unwrap());
            }
            out.extend_from_slice(&e.finish().unwrap());
            assert!(out.len() < text.len() / 10, "{algorithm:?}: {}", out.len());
            let back = match algorithm {
                Algorithm::Gzip => {
                    let mut d = flate2::read::GzDecoder::new(&out[..]);
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut d, &mut s).unwrap();
                    s
                }
                Algorithm::Brotli => {
                    let mut d = brotli::Decompressor::new(&out[..], 4096);
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut d, &mut s).unwrap();
                    s
                }
                Algorithm::Zstd => String::from_utf8(zstd::decode_all(&out[..]).unwrap()).unwrap(),
            };
            assert_eq!(back, text, "{algorithm:?}");
        }
    }
}
