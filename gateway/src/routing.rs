//! Route matching: which route answers a request.
//!
//! Precedence, highest first: an exact path over a prefix; a longer prefix over a shorter
//! one; a route with a host over one without; a route with a method list over one without;
//! then the order in the file. Routes are sorted once so that matching is a linear scan that
//! stops at the first hit (route tables are small; a scan beats a trie at that size).

use http::Method;

use crate::config::{PathMatch, RouteAction, RouteConfig};

pub(crate) struct Route {
    /// Position in `Config::routes`, which indexes per-route state such as limiters.
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) path: PathMatch,
    host: Option<String>,
    methods: Option<Vec<Method>>,
    pub(crate) action: RouteAction,
    pub(crate) body_limit: u64,
    pub(crate) auth: crate::config::AuthMode,
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str, method: &Method) -> bool {
        path_matches(&self.path, path)
            && self.host.as_deref().is_none_or(|h| Some(h) == host)
            && self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// The path to send upstream, with the matched prefix removed when configured.
    pub(crate) fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        let strip = matches!(
            self.action,
            RouteAction::Proxy {
                strip_prefix: true,
                ..
            }
        );
        match (&self.path, strip) {
            (PathMatch::Prefix(prefix), true) => {
                let rest = &path[prefix.trim_end_matches('/').len().min(path.len())..];
                if rest.starts_with('/') {
                    rest.into()
                } else {
                    format!("/{rest}").into()
                }
            }
            _ => path.into(),
        }
    }
}

/// `/api` matches `/api` and `/api/...` but not `/apix`; `/api/` and `/` match everything
/// below them.
/// Whether a canonical `path` is the route's exact path or under its prefix.
pub(crate) fn path_matches(matcher: &PathMatch, path: &str) -> bool {
    match matcher {
        PathMatch::Exact(p) => path == p,
        PathMatch::Prefix(p) => prefix_matches(p, path),
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix) || path == prefix.trim_end_matches('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub(crate) struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub(crate) fn new(configs: &[RouteConfig]) -> Self {
        let mut routes: Vec<(usize, Route)> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    i,
                    Route {
                        index: i,
                        name: c.name.clone(),
                        path: c.matcher.path.clone(),
                        host: c.matcher.host.clone(),
                        methods: c.matcher.methods.clone(),
                        action: c.action.clone(),
                        body_limit: c.body_limit,
                        auth: c.auth,
                    },
                )
            })
            .collect();
        routes.sort_by_key(|(i, r)| {
            let (exact, len) = match &r.path {
                PathMatch::Exact(p) => (0, usize::MAX - p.len()),
                PathMatch::Prefix(p) => (1, usize::MAX - p.trim_end_matches('/').len()),
            };
            (exact, len, r.host.is_none(), r.methods.is_none(), *i)
        });
        Self {
            routes: routes.into_iter().map(|(_, r)| r).collect(),
        }
    }

    /// The route for a request. `host` is lower-case without a port.
    pub(crate) fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(host, path, method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteMatch;

    fn route(
        name: &str,
        path: PathMatch,
        host: Option<&str>,
        methods: Option<&[Method]>,
    ) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            matcher: RouteMatch {
                path,
                host: host.map(str::to_owned),
                methods: methods.map(<[Method]>::to_vec),
            },
            action: RouteAction::Proxy {
                pool: 0,
                strip_prefix: true,
            },
            body_limit: 1024,
            auth: crate::config::AuthMode::None,
            rate_limits: Vec::new(),
            https_redirect: true,
            policies: Default::default(),
            timeouts: Default::default(),
            split: None,
            mirror: None,
        }
    }

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    fn name<'a>(
        router: &'a Router,
        host: Option<&str>,
        path: &str,
        method: &Method,
    ) -> Option<&'a str> {
        router.find(host, path, method).map(|r| r.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_regardless_of_file_order() {
        let router = Router::new(&[
            route("root", prefix("/"), None, None),
            route("api", prefix("/api"), None, None),
            route("api_v2", prefix("/api/v2"), None, None),
        ]);

        assert_eq!(
            name(&router, None, "/api/v2/x", &Method::GET),
            Some("api_v2")
        );
        assert_eq!(name(&router, None, "/api/v1", &Method::GET), Some("api"));
        assert_eq!(name(&router, None, "/other", &Method::GET), Some("root"));
    }

    #[test]
    fn exact_beats_prefix_and_only_matches_itself() {
        let router = Router::new(&[
            route("prefix", prefix("/login"), None, None),
            route("exact", PathMatch::Exact("/login".into()), None, None),
        ]);

        assert_eq!(name(&router, None, "/login", &Method::GET), Some("exact"));
        assert_eq!(
            name(&router, None, "/login/x", &Method::GET),
            Some("prefix")
        );
    }

    #[test]
    fn prefix_respects_segment_boundaries() {
        let router = Router::new(&[route("todos", prefix("/todos"), None, None)]);

        assert_eq!(name(&router, None, "/todos", &Method::GET), Some("todos"));
        assert_eq!(name(&router, None, "/todos/7", &Method::GET), Some("todos"));
        assert_eq!(name(&router, None, "/todosx", &Method::GET), None);
    }

    #[test]
    fn host_and_method_specific_routes_win_over_generic_ones() {
        let router = Router::new(&[
            route("any", prefix("/a"), None, None),
            route("post", prefix("/a"), None, Some(&[Method::POST])),
            route("host", prefix("/a"), Some("api.example.com"), None),
        ]);

        assert_eq!(
            name(&router, Some("api.example.com"), "/a", &Method::GET),
            Some("host")
        );
        assert_eq!(name(&router, None, "/a", &Method::POST), Some("post"));
        assert_eq!(name(&router, None, "/a", &Method::GET), Some("any"));
        assert_eq!(
            name(&router, Some("other"), "/a", &Method::GET),
            Some("any")
        );
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let router = Router::new(&[route("api", prefix("/api"), None, None)]);
        let r = router.find(None, "/api", &Method::GET).unwrap();

        assert_eq!(r.upstream_path("/api/todos/1"), "/todos/1");
        assert_eq!(r.upstream_path("/api"), "/");
    }
}
