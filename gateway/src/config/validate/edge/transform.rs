//! Rewrites, redirects and compression.

use http::StatusCode;

use super::headers::parse_template;
use super::Errors;
use crate::config::edge::{Algorithm, Compression, Redirect, Rewrite};
use crate::config::file::{CompressionFile, CompressionSpec, RedirectFile, RewriteFile};

fn check_regex(errs: &mut Errors<'_>, at: &str, pattern: &str) -> Option<regex::Regex> {
    // The size limit keeps a config from building a huge automaton; matching is linear-time
    // in the regex crate whatever the pattern.
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            // The crate's message draws the pattern with a caret over several lines; a
            // config error is one line, so keep its last line (what is wrong).
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            errs.push(at, format!("invalid regular expression {pattern:?}: {why}"));
            None
        }
    }
}

pub(super) fn check_rewrite(
    errs: &mut Errors<'_>,
    at: &str,
    file: &RewriteFile,
) -> Option<Rewrite> {
    let pattern = check_regex(errs, &format!("{at}.match"), &file.pattern)?;
    match parse_template(&file.to, Some(&pattern)) {
        Ok(to) if file.to.starts_with('/') || file.to.starts_with('$') => {
            Some(Rewrite { pattern, to })
        }
        Ok(_) => {
            errs.push(
                format!("{at}.to"),
                format!("{:?} must be a path starting with /", file.to),
            );
            None
        }
        Err(e) => {
            errs.push(format!("{at}.to"), e);
            None
        }
    }
}

pub(in crate::config::validate) fn check_redirect(
    errs: &mut Errors<'_>,
    at: &str,
    file: &RedirectFile,
) -> Option<Redirect> {
    let status = match StatusCode::from_u16(file.status) {
        Ok(s) if matches!(file.status, 301 | 302 | 303 | 307 | 308) => s,
        _ => {
            errs.push(
                format!("{at}.status"),
                format!(
                    "{} is not a redirect status: use 301, 302, 303, 307 or 308",
                    file.status
                ),
            );
            return None;
        }
    };
    // Without a pattern, $1 is the whole path.
    let pattern = check_regex(
        errs,
        &format!("{at}.match"),
        file.pattern.as_deref().unwrap_or("^(.*)$"),
    )?;
    let to = match parse_template(&file.to, Some(&pattern)) {
        Ok(t) => t,
        Err(e) => {
            errs.push(format!("{at}.to"), e);
            return None;
        }
    };
    let absolute = file.to.starts_with("https://") || file.to.starts_with("http://");
    if !absolute && !file.to.starts_with('/') {
        errs.push(
            format!("{at}.to"),
            format!(
                "{:?} must be an absolute URL (https://...) or a path starting with /",
                file.to
            ),
        );
        return None;
    }
    if file.to.starts_with("//") {
        errs.push(
            format!("{at}.to"),
            format!(
                "{:?} starts with // (a scheme-relative URL); write the scheme",
                file.to
            ),
        );
        return None;
    }
    Some(Redirect {
        status,
        pattern,
        to,
        keep_query: file.keep_query,
    })
}

pub(super) fn check_compression(
    errs: &mut Errors<'_>,
    at: &str,
    file: CompressionFile,
) -> Option<Compression> {
    let spec: CompressionSpec = match file {
        CompressionFile::Off(_) => return None,
        CompressionFile::On(spec) => spec,
    };
    let mut algorithms = Vec::new();
    for (i, name) in spec.algorithms.iter().enumerate() {
        let algorithm = match name.as_str() {
            "zstd" => Algorithm::Zstd,
            "br" => Algorithm::Brotli,
            "gzip" => Algorithm::Gzip,
            _ => {
                errs.push(
                    format!("{at}.algorithms[{i}]"),
                    format!("unknown algorithm {name:?}, expected zstd, br or gzip"),
                );
                continue;
            }
        };
        if algorithms.contains(&algorithm) {
            errs.push(
                format!("{at}.algorithms[{i}]"),
                format!("{name} is listed twice"),
            );
            continue;
        }
        algorithms.push(algorithm);
    }
    if spec.algorithms.is_empty() {
        errs.push(
            format!("{at}.algorithms"),
            "list at least one of zstd, br, gzip (or write compression: off)",
        );
    }
    let mut content_types = Vec::new();
    for (i, t) in spec.content_types.iter().enumerate() {
        let lower = t.trim().to_ascii_lowercase();
        let valid = match lower.split_once('/') {
            Some((ty, "*")) => !ty.is_empty() && !ty.contains('*'),
            Some((ty, sub)) => {
                !ty.is_empty() && !sub.is_empty() && !lower.contains(['*', ';', ' '])
            }
            None => false,
        };
        if !valid {
            errs.push(
                format!("{at}.content_types[{i}]"),
                format!(
                    "invalid media type {t:?}, expected e.g. \"application/json\" or \"text/*\""
                ),
            );
            continue;
        }
        content_types.push(lower.strip_suffix('*').map(str::to_owned).unwrap_or(lower));
    }
    Some(Compression {
        algorithms,
        min_size: spec.min_size.0,
        content_types,
    })
}
