//! Header rules, their templates, and security headers.

use http::{HeaderName, HeaderValue};

use super::{EdgeContext, Errors, FRAMING, REQUEST_IDENTITY};
use crate::config::edge::{HeaderRules, Part, SecurityHeaders, Template, Var};
use crate::config::file::{HeaderRulesFile, PresetFile, SecurityHeadersFile, SecurityHeadersSpec};

pub(super) fn check_security(
    errs: &mut Errors<'_>,
    at: &str,
    file: SecurityHeadersFile,
) -> SecurityHeaders {
    let spec = match file {
        SecurityHeadersFile::Preset(PresetFile::Off) => return SecurityHeaders::default(),
        SecurityHeadersFile::Preset(PresetFile::Default) => SecurityHeadersSpec {
            preset: PresetFile::Default,
            strict_transport_security: None,
            content_type_options: None,
            frame_options: None,
            referrer_policy: None,
            content_security_policy: None,
            permissions_policy: None,
            hide: None,
        },
        SecurityHeadersFile::Custom(spec) => spec,
    };
    let preset = spec.preset == PresetFile::Default;
    // (header, the key that overrides it, the preset's value)
    let fields: [(&str, &str, Option<String>, Option<&str>); 6] = [
        (
            "strict-transport-security",
            "strict_transport_security",
            spec.strict_transport_security,
            Some("max-age=31536000"),
        ),
        (
            "x-content-type-options",
            "content_type_options",
            spec.content_type_options,
            Some("nosniff"),
        ),
        (
            "x-frame-options",
            "frame_options",
            spec.frame_options,
            Some("DENY"),
        ),
        (
            "referrer-policy",
            "referrer_policy",
            spec.referrer_policy,
            Some("strict-origin-when-cross-origin"),
        ),
        (
            "content-security-policy",
            "content_security_policy",
            spec.content_security_policy,
            None,
        ),
        (
            "permissions-policy",
            "permissions_policy",
            spec.permissions_policy,
            None,
        ),
    ];
    let mut out = SecurityHeaders::default();
    for (name, key, given, preset_value) in fields {
        let text = match given {
            Some(v) if v == "off" => continue,
            Some(v) => v,
            None => match (preset, preset_value) {
                (true, Some(v)) => v.to_owned(),
                _ => continue,
            },
        };
        let Ok(value) = HeaderValue::from_str(&text) else {
            errs.push(
                format!("{at}.{key}"),
                format!("invalid header value {text:?}"),
            );
            continue;
        };
        let name = HeaderName::from_static(name);
        if name == http::header::STRICT_TRANSPORT_SECURITY {
            out.hsts = Some(value);
        } else {
            out.headers.push((name, value));
        }
    }
    let hide = spec.hide.unwrap_or_else(|| {
        if preset {
            vec!["server".into(), "x-powered-by".into()]
        } else {
            Vec::new()
        }
    });
    for (i, name) in hide.iter().enumerate() {
        match header_name(name) {
            Some(n) => out.hide.push(n),
            None => errs.push(
                format!("{at}.hide[{i}]"),
                format!("invalid header name {name:?}"),
            ),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Request,
    Response,
}

pub(super) fn header_name(text: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(text.as_bytes()).ok()
}

pub(super) fn check_rules(
    errs: &mut Errors<'_>,
    at: &str,
    file: HeaderRulesFile,
    side: Side,
    cx: &EdgeContext<'_>,
    captures: Option<&regex::Regex>,
) -> HeaderRules {
    let mut out = HeaderRules::default();
    let name_ok = |errs: &mut Errors<'_>, path: String, text: &str| -> Option<HeaderName> {
        let Some(name) = header_name(text) else {
            errs.push(path, format!("invalid header name {text:?}"));
            return None;
        };
        let framing = FRAMING.contains(&name.as_str());
        let identity = match side {
            Side::Request => {
                REQUEST_IDENTITY.contains(&name.as_str()) || cx.identity_headers.contains(&name)
            }
            Side::Response => name.as_str() == "x-request-id",
        };
        if framing || identity {
            let why = if framing {
                "a framing header, which the gateway manages"
            } else {
                "an identity header, which only the gateway sets"
            };
            let hint = if name == http::header::HOST {
                " (use upstream_host to change the upstream Host)"
            } else {
                ""
            };
            errs.push(path, format!("{name} is {why}{hint}"));
            return None;
        }
        Some(name)
    };
    for (i, text) in file.remove.iter().enumerate() {
        if let Some(name) = name_ok(errs, format!("{at}.remove[{i}]"), text) {
            out.remove.push(name);
        }
    }
    for (key, map, list) in [
        ("set", file.set, &mut out.set),
        ("add", file.add, &mut out.add),
    ] {
        for (text, value) in map {
            let path = format!("{at}.{key}.{text}");
            let Some(name) = name_ok(errs, path.clone(), &text) else {
                continue;
            };
            match parse_template(&value, captures) {
                Ok(t) => {
                    if t.as_text()
                        .is_some_and(|v| HeaderValue::from_str(v).is_err())
                    {
                        errs.push(path, format!("invalid header value {value:?}"));
                        continue;
                    }
                    list.push((name, t));
                }
                Err(e) => errs.push(path, e),
            }
        }
    }
    out
}

/// `text` with `${var}`, `$1`..`$9` and `${name}` (a named capture); `$$` is a `$`.
pub(super) fn parse_template(
    text: &str,
    captures: Option<&regex::Regex>,
) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (part, used) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                return Err(format!("unclosed ${{ in {text:?}"));
            };
            let name = &inner[..end];
            let part = match name {
                "client_ip" => Part::Var(Var::ClientIp),
                "request_id" => Part::Var(Var::RequestId),
                "route" => Part::Var(Var::Route),
                "host" => Part::Var(Var::Host),
                "path" => Part::Var(Var::Path),
                _ => match name.parse::<usize>() {
                    Ok(n) => Part::Group(n),
                    Err(_) => Part::Named(name.to_owned()),
                },
            };
            (part, end + 2)
        } else if rest.starts_with('$') {
            literal.push('$');
            rest = &rest[1..];
            continue;
        } else if let Some(d) = rest.chars().next().filter(char::is_ascii_digit) {
            (Part::Group(d as usize - '0' as usize), 1)
        } else {
            return Err(format!(
                "a lone $ in {text:?}: write $$ for a dollar sign, ${{name}} or $1 for a variable"
            ));
        };
        match &part {
            Part::Group(n) => {
                let groups = captures.map_or(0, |re| re.captures_len() - 1);
                if *n > groups || (*n == 0 && captures.is_none()) {
                    return Err(format!(
                        "${n} in {text:?} names no capture group of this route's match pattern ({groups} groups)"
                    ));
                }
            }
            Part::Named(name) => {
                let known =
                    captures.is_some_and(|re| re.capture_names().flatten().any(|c| c == name));
                if !known {
                    return Err(format!(
                        "unknown variable ${{{name}}} in {text:?}: expected client_ip, request_id, route, host, path, or a capture of this route's match pattern"
                    ));
                }
            }
            _ => {}
        }
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &rest[used..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(Template { parts })
}
