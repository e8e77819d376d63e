//! Pass 1, shapes: the YAML text becomes one typed value per section, and every error of that
//! step is reported from typed data (serde's error location, serde_path_to_error's segments,
//! serde-value's error kinds), never by reading a dependency's message text.

use serde::de::DeserializeOwned;
use serde_path_to_error::{Path as KeyPath, Segment};
use serde_value::{DeserializerError, ValueDeserializer};
use serde_yaml::Value;

use super::super::file::{
    DnsFile, JwtFile, LimitsFile, ListenersFile, PoolFile, RateLimitingFile, RouteDefaultsFile,
    RouteFile, ServerFile, TlsFile, TopFile,
};
use super::super::spans::Position;
use super::Errors;

/// What `gateway.yaml` holds, section by section, after the shape pass: each section (and
/// each pool and route) deserialized on its own, so that one typo does not hide the next.
/// A section that failed to deserialize is `None`, its error recorded.
pub(super) struct Shapes {
    pub(super) server: Option<ServerFile>,
    pub(super) listeners: Option<ListenersFile>,
    pub(super) limits: Option<LimitsFile>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) dns: Option<DnsFile>,
    pub(super) jwt: Option<JwtFile>,
    pub(super) rate_limiting: Option<RateLimitingFile>,
    pub(super) tls: Option<TlsFile>,
    /// The pools that deserialized, by name.
    pub(super) pools: Vec<(String, PoolFile)>,
    /// Every declared pool name, valid or not: routes are checked against all of them, so
    /// that one broken pool does not also make each route using it an "unknown pool".
    /// Indices match the validated pools whenever validation succeeds, since any failed
    /// pool fails the whole file.
    pub(super) pool_names: Vec<String>,
    pub(super) route_defaults: Option<RouteDefaultsFile>,
    /// The routes that deserialized, with their position in the file.
    pub(super) routes: Vec<(usize, RouteFile)>,
}

impl Shapes {
    /// Deserialize every section, defaulting the absent ones. `None` only when the document
    /// itself cannot be read (a YAML syntax error, a duplicate key, a top level that is not
    /// a mapping); then nothing else can be checked.
    pub(super) fn read(errs: &mut Errors<'_>, text: &str) -> Option<Self> {
        let top = document(errs, text)?;
        let mut pools = Vec::new();
        let mut pool_names = Vec::new();
        for (key, value) in top.pools.unwrap_or_default() {
            let Some(name) = key.as_str().map(str::to_owned) else {
                errs.push("pools", format!("pool names must be strings, got {key:?}"));
                continue;
            };
            pool_names.push(name.clone());
            if let Some(pool) = errs.section::<PoolFile>(&format!("pools.{name}"), value) {
                pools.push((name, pool));
            }
        }
        let mut routes = Vec::new();
        for (i, value) in top.routes.unwrap_or_default().into_iter().enumerate() {
            if let Some(route) = errs.section::<RouteFile>(&format!("routes[{i}]"), value) {
                routes.push((i, route));
            }
        }
        Some(Self {
            server: errs.section_or_default("server", top.server),
            listeners: errs.section_or_default("listeners", top.listeners),
            limits: errs.section_or_default("limits", top.limits),
            trusted_proxies: errs.section_or_default("trusted_proxies", top.trusted_proxies),
            dns: errs.section_or_default("dns", top.dns),
            jwt: top.jwt.and_then(|v| errs.section::<JwtFile>("jwt", v)),
            rate_limiting: errs.section_or_default("rate_limiting", top.rate_limiting),
            tls: top.tls.and_then(|v| errs.section::<TlsFile>("tls", v)),
            pools,
            pool_names,
            route_defaults: errs.section_or_default("route_defaults", top.route_defaults),
            routes,
        })
    }
}

/// The document's top level. Syntax errors and duplicate keys are reported from the position
/// index, which read the same text with positions for every event (serde_yaml's own message
/// for these carries its position inside the text); anything else serde_yaml refuses is
/// reported with its message and `location()`.
fn document(errs: &mut Errors<'_>, text: &str) -> Option<TopFile> {
    let value = match serde_yaml::from_str::<Value>(text) {
        Ok(value) => value,
        Err(e) => {
            let spans = errs.spans;
            if !spans.duplicates().is_empty() {
                for dup in spans.duplicates() {
                    errs.push_at(
                        dup.path.clone(),
                        Some(dup.at),
                        format!("duplicate key (first set at line {})", dup.first.line),
                    );
                }
            } else if let Some(syntax) = spans.syntax_error() {
                errs.push_at("", Some(syntax.at), syntax.message.clone());
            } else {
                let at = e.location().map(|l| Position {
                    line: l.line(),
                    column: l.column(),
                });
                errs.push_at("", at, e.to_string());
            }
            return None;
        }
    };
    if value.is_null() {
        return Some(TopFile::default());
    }
    errs.section::<TopFile>("", value)
}

impl Errors<'_> {
    /// Deserialize one section on its own. Every unknown key is reported (and dropped, so
    /// that the rest of the section is still checked); any other error ends the section,
    /// which is then `None`.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        mut value: Value,
    ) -> Option<T> {
        loop {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            // serde_yaml's errors are all text; serde-value's deserializer, given the same
            // data, says in a typed variant whether a key was unknown. Only that kind of
            // error is recoverable (drop the key, try again), so only it is asked for.
            if let Some((path, field, expected)) = unknown_key::<T>(&value) {
                if remove_key(&mut value, &path) {
                    let message: serde_yaml::Error =
                        DeserializerError::UnknownField(field, expected).into_error();
                    self.push(join(prefix, &path), message.to_string());
                    continue;
                }
            }
            self.push(join(prefix, e.path()), e.into_inner().to_string());
            return None;
        }
    }

    /// A section that may be left out: its default when absent, else deserialized.
    pub(super) fn section_or_default<T: DeserializeOwned + Default>(
        &mut self,
        prefix: &str,
        value: Option<Value>,
    ) -> Option<T> {
        match value {
            None => Some(T::default()),
            Some(v) => self.section::<T>(prefix, v),
        }
    }
}

/// The first key of `value` that `T` has no field for: its path, name and `T`'s field names.
fn unknown_key<T: DeserializeOwned>(
    value: &Value,
) -> Option<(KeyPath, String, &'static [&'static str])> {
    let generic = serde_value::to_value(value).ok()?;
    let deserializer = ValueDeserializer::<DeserializerError>::new(generic);
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Err(e) => match e.inner() {
            DeserializerError::UnknownField(field, expected) => {
                Some((e.path().clone(), field.clone(), *expected))
            }
            _ => None,
        },
        Ok(_) => None,
    }
}

/// Remove the mapping key at `path` from `value`; false when the path does not lead there.
fn remove_key(value: &mut Value, path: &KeyPath) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        let next = match (segment, node) {
            (Segment::Seq { index }, Value::Sequence(items)) => items.get_mut(*index),
            (Segment::Map { key }, Value::Mapping(map)) => map.get_mut(key.as_str()),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    match node {
        Value::Mapping(map) => map.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// `prefix` followed by serde's key path, in the file's own notation (`routes[2].match`).
fn join(prefix: &str, path: &KeyPath) -> String {
    let mut out = prefix.to_owned();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}
