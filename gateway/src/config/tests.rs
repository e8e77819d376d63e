//! The invalid-config table: each broken file and the exact lines `gateway check` prints.

use std::path::Path;

use super::*;

const ROUTES: &str = "routes:\n  - match: { path_prefix: / }\n    pool: p\n";

fn errors_of(text: &str) -> Vec<String> {
    match parse(Path::new("gw.yaml"), text) {
        Ok(_) => vec!["<valid>".to_owned()],
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

/// Every case's errors are exactly the expected lines; all mismatches are shown at once.
fn assert_each_reports(cases: Vec<(String, Vec<&str>)>) {
    let mismatches: Vec<String> = cases
        .into_iter()
        .filter(|(text, expected)| errors_of(text) != *expected)
        .map(|(text, expected)| {
            format!(
                "config:\n{text}\nexpected {expected:#?}\ngot {:#?}",
                errors_of(&text)
            )
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn invalid_configs_report_file_line_column_key_and_value() {
    let pool = "pools:\n  p:\n    endpoints: [\"127.0.0.1:1\"]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("listeners:\n  htp: 0.0.0.0:80\n{pool}{ROUTES}"),
            vec!["gw.yaml:2:3: listeners.htp: unknown field `htp`, expected one of `http`, `admin`, `https`"],
        ),
        (
            format!("listeners:\n  https: 0.0.0.0:443\n{pool}{ROUTES}"),
            vec!["gw.yaml:2:3: listeners.https: needs a tls: section with the certificates to serve"],
        ),
        (
            format!("tls:\n  redirect_http: true\n  min_version: 1.1\n{pool}{ROUTES}"),
            vec!["gw.yaml:3:3: tls.min_version: unsupported TLS version \"1.1\"; write 1.2 or 1.3 (1.0 and 1.1 are refused)"],
        ),
        (
            format!("tls:\n  redirect_http: true\n  certificates: []\n{pool}{ROUTES}"),
            vec!["gw.yaml:3:3: tls.certificates: list at least one certificate (cert_file and key_file), a default_certificate, acme or self_signed"],
        ),
        (
            format!(
                "tls:\n  acme:\n    directory_url: http://ca.test/dir\n    email: ops\n    domains: [\"*.example.com\", 10.0.0.1, nodot, a.example.com, A.example.com]\n    storage: acme\n    renew_before: 0s\n{pool}{ROUTES}"
            ),
            vec![
                "gw.yaml:3:5: tls.acme.directory_url: \"http://ca.test/dir\" is not an https:// URL of an ACME directory (Let's Encrypt's is https://acme-v02.api.letsencrypt.org/directory)",
                "gw.yaml:4:5: tls.acme.email: \"ops\" is not an email address",
                "gw.yaml:5:15: tls.acme.domains[0]: *.example.com: a wildcard needs the DNS-01 challenge; the gateway answers HTTP-01 only",
                "gw.yaml:5:32: tls.acme.domains[1]: 10.0.0.1: an IP address; list DNS names",
                "gw.yaml:5:42: tls.acme.domains[2]: \"nodot\" is not a DNS name with at least two labels (such as api.example.com)",
                "gw.yaml:5:64: tls.acme.domains[4]: a.example.com is listed twice",
                "gw.yaml:7:5: tls.acme.renew_before: must be longer than zero",
            ],
        ),
        (
            format!(
                "tls:\n  acme:\n    directory_url: https://ca.test/dir\n    domains: [a.example.com]\n    storage: acme\n{pool}{ROUTES}"
            ),
            vec!["gw.yaml:2:3: tls.acme: needs listeners.https to serve its certificate on"],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: q\n"),
            vec!["gw.yaml:6:5: routes[0].pool: unknown pool \"q\" (known: p)"],
        ),
        (
            format!("{pool}    timeouts: {{ connect: 0s, read: soon }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:30: pools.p.timeouts.read: invalid duration \"soon\" (expected number at 0); write e.g. \"500ms\" or \"2s\"",
            ],
        ),
        (
            format!("{pool}    timeouts: {{ connect: 2 }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:17: pools.p.timeouts.connect: a duration needs a unit: write e.g. \"2s\" or \"2ms\", not 2",
            ],
        ),
        (
            format!("{pool}    timeouts: {{ connect: 0s }}\n{ROUTES}"),
            vec!["gw.yaml:4:17: pools.p.timeouts.connect: must be greater than 0, got 0s"],
        ),
        (
            format!("{pool}{ROUTES}  - match: {{ path_prefix: / }}\n    pool: p\n"),
            vec![
                "gw.yaml:7:5: routes[1].match: duplicates routes[0]: same host, path and methods, so this route could never match",
            ],
        ),
        (
            format!("listeners: {{ http: \"localhost\" }}\ntrusted_proxies: [\"10.0.0.0/33\"]\n{pool}{ROUTES}"),
            vec![
                "gw.yaml:1:14: listeners.http: invalid listen address \"localhost\", expected ip:port such as \"0.0.0.0:80\"",
                "gw.yaml:2:19: trusted_proxies[0]: invalid CIDR \"10.0.0.0/33\", expected e.g. \"10.0.0.0/8\" or \"127.0.0.1\"",
            ],
        ),
        (
            "pools:\n  p:\n    endpoints: [\"db:99999\", \"bad host:80\"]\n    balance: consistent_hash\n    hash_key: cookie\n".to_owned()
                + ROUTES,
            vec![
                "gw.yaml:3:17: pools.p.endpoints[0]: invalid port in endpoint \"db:99999\", expected 1-65535",
                "gw.yaml:3:29: pools.p.endpoints[1]: invalid host name in endpoint \"bad host:80\"",
                "gw.yaml:5:5: pools.p.hash_key: unknown hash_key \"cookie\", expected client_ip, path or header:<name>",
            ],
        ),
        (
            format!("{pool}    health_check: {{ kind: tcp, path: /healthz, interval: 0s }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:48: pools.p.health_check.interval: must be greater than 0, got 0s",
                "gw.yaml:4:32: pools.p.health_check.path: only applies to kind: http",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path: /x, path_prefix: /x }}\n    respond: {{ status: 99 }}\n    pool: p\n"),
            vec![
                "gw.yaml:5:5: routes[0].match: set either path_prefix or path, not both",
                "gw.yaml:7:5: routes[0].pool: set one of pool, respond and redirect, not several",
            ],
        ),
        (
            "routes: [\n".to_owned(),
            vec!["gw.yaml:2:1: while parsing a node, did not find expected node content"],
        ),
        (
            format!("{pool}    endpoints: [\"127.0.0.1:2\"]\n{ROUTES}  - match: {{ path_prefix: /a }}\n    pool: p\n    pool: p\n"),
            vec![
                "gw.yaml:4:5: pools.p.endpoints: duplicate key (first set at line 3)",
                "gw.yaml:10:5: routes[1].pool: duplicate key (first set at line 9)",
            ],
        ),
        (
            format!("lisenters: {{ http: \"0.0.0.0:80\" }}\n{pool}routes:\n  - match: {{ path_prefix: /, methods: [GET] }}\n    pool: q\n    auht: required\n    retires: 2\n"),
            vec![
                "gw.yaml:1:1: lisenters: unknown field `lisenters`, expected one of `server`, `listeners`, `limits`, `trusted_proxies`, `dns`, `jwt`, `rate_limiting`, `tls`, `pools`, `route_defaults`, `routes`",
                "gw.yaml:8:5: routes[0].auht: unknown field `auht`, expected one of `name`, `match`, `pool`, `strip_prefix`, `respond`, `redirect`, `rewrite`, `upstream_host`, `body_limit`, `auth`, `rate_limits`, `split`, `sticky`, `override_header`, `mirror`, `timeouts`, `https_redirect`, `ip_allow`, `ip_deny`, `security_headers`, `request_headers`, `response_headers`, `cors`, `basic_auth`, `compression`, `api_keys`, `forward_auth`",
                "gw.yaml:9:5: routes[0].retires: unknown field `retires`, expected one of `name`, `match`, `pool`, `strip_prefix`, `respond`, `redirect`, `rewrite`, `upstream_host`, `body_limit`, `auth`, `rate_limits`, `split`, `sticky`, `override_header`, `mirror`, `timeouts`, `https_redirect`, `ip_allow`, `ip_deny`, `security_headers`, `request_headers`, `response_headers`, `cors`, `basic_auth`, `compression`, `api_keys`, `forward_auth`",
                "gw.yaml:7:5: routes[0].pool: unknown pool \"q\" (known: p)",
            ],
        ),
        (String::new(), vec!["gw.yaml: routes: at least one route is required"]),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    auth: required\n"),
            vec!["gw.yaml:7:5: routes[0].auth: needs a jwt: section to verify tokens with"],
        ),
        (
            format!(
                "{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    rate_limits:\n      - {{ key: cookie, rate: 0, per: 1s }}\n"
            ),
            vec![
                "gw.yaml:8:11: routes[0].rate_limits[0].key: unknown key \"cookie\", expected client_ip, subject, route, api_key or header:<name>",
                "gw.yaml:8:24: routes[0].rate_limits[0].rate: must be greater than 0, got 0",
            ],
        ),
        (
            format!(
                "{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    rate_limits: [{{ rate: 1, per: 1s, scope: cluster }}]\n"
            ),
            vec!["gw.yaml:7:5: routes[0].rate_limits: scope: cluster needs rate_limiting.redis_url"],
        ),
        (
            format!("jwt:\n  issuers: []\n  audiences: [a]\n  jwks: {{ url: \"https://x\" }}\n{pool}{ROUTES}"),
            vec![
                "gw.yaml:2:3: jwt.issuers: must list at least one accepted issuer",
                "gw.yaml:4:11: jwt.jwks.url: expected an http:// URL, got \"https://x\"",
            ],
        ),
        (
            format!(
                "jwt:\n  issuers: [i]\n  audiences: [a]\n  leeway: 1h\n  forward_claims: {{ sub: Content-Length, org: X-Forwarded-Org }}\n  jwks: {{ url: \"http://x\", min_refresh_interval: 0s }}\n{pool}{ROUTES}"
            ),
            vec![
                "gw.yaml:4:3: jwt.leeway: must be at most 5m, got 1h",
                "gw.yaml:5:21: jwt.forward_claims.sub: \"Content-Length\" is a framing, routing or forwarding header the gateway owns; name another header (e.g. X-User-Id)",
                "gw.yaml:5:42: jwt.forward_claims.org: \"X-Forwarded-Org\" is a framing, routing or forwarding header the gateway owns; name another header (e.g. X-User-Id)",
                "gw.yaml:6:28: jwt.jwks.min_refresh_interval: must be at least 100ms (each unknown key id may trigger a fetch), got 0s",
            ],
        ),
        (
            format!(
                "{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    rate_limits: [{{ rate: 1, per: 2d, burst: 2000000 }}]\n"
            ),
            vec![
                "gw.yaml:7:30: routes[0].rate_limits[0].per: must be at most 1day, got 2days",
                "gw.yaml:7:39: routes[0].rate_limits[0].burst: must be at most 1000000, got 2000000",
            ],
        ),
        (
            format!(
                "{pool}routes:\n  - match: {{ path: /auth/login/ }}\n    pool: p\n  - match: {{ path_prefix: /a/../b }}\n    pool: p\n"
            ),
            vec![
                "gw.yaml:5:14: routes[0].match.path: must be a canonical path (requests are matched in canonical form), got \"/auth/login/\"; write \"/auth/login\"",
                "gw.yaml:7:14: routes[1].match.path_prefix: holds a '.' or '..' segment, which no request path may contain, got \"/a/../b\"",
            ],
        ),
        (
            format!(
                "limits: {{ header_timeout: 0s, max_connections: 0 }}\nrate_limiting: {{ ipv6_prefix: 0 }}\n{pool}{ROUTES}"
            ),
            vec![
                "gw.yaml:1:11: limits.header_timeout: must be greater than 0, got 0s",
                "gw.yaml:1:31: limits.max_connections: must be at least 1, got 0",
                "gw.yaml:2:18: rate_limiting.ipv6_prefix: must be between 1 and 128, got 0",
            ],
        ),
        (
            format!("{pool}    forward_secret: {{ header: Host, secret_env: NOPE }}\n{ROUTES}"),
            vec!["gw.yaml:4:23: pools.p.forward_secret.header: \"Host\" is a header the gateway owns"],
        ),
    ];

    assert_each_reports(cases);
}

#[test]
fn the_committed_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("gateway.yaml")];
    for entry in std::fs::read_dir(root.join("config/gateway")).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        if let Err(e) = load(&file) {
            panic!("{e}");
        }
    }
}

#[test]
fn defaults_fill_everything_that_is_left_out() {
    let config = parse(
        Path::new("gw.yaml"),
        &format!("pools:\n  p:\n    endpoints: [\"backend:8080\"]\n{ROUTES}"),
    )
    .unwrap();

    assert_eq!(config.listeners.http.to_string(), "0.0.0.0:80");
    assert_eq!(config.listeners.admin.to_string(), "127.0.0.1:9091");
    let pool = &config.pools[0];
    assert_eq!(
        pool.endpoints,
        vec![WeightedEndpoint {
            spec: EndpointSpec::Name {
                host: "backend".into(),
                port: 8080
            },
            weight: 1,
        }]
    );
    assert_eq!(pool.balance, Balance::RoundRobin);
    assert_eq!(pool.resolve_interval, Duration::from_secs(2));
    assert_eq!(pool.retries.attempts, 2);
    assert!(pool.retries.idempotent_on_reset);
    assert!(pool.retries.on_status.is_empty());
    assert_eq!(pool.breaker.consecutive_failures, 5);
    assert!(pool.breaker.failure_statuses.contains(500));
    assert!(pool.breaker.failure_statuses.contains(599));
    assert!(!pool.breaker.failure_statuses.contains(429));
    assert_eq!(pool.breaker.max_ejected_percent, 50);
    assert_eq!(pool.admission, None);
    assert_eq!(config.routes[0].name, "/");
}

#[test]
fn endpoints_take_a_weight_in_their_long_form() {
    let config = parse(
        Path::new("gw.yaml"),
        &format!("pools:\n  p:\n    endpoints: [\"a:80\", {{ address: \"10.0.0.2:80\", weight: 9 }}]\n{ROUTES}"),
    )
    .unwrap();

    let weights: Vec<(String, u16)> = config.pools[0]
        .endpoints
        .iter()
        .map(|e| (e.spec.to_string(), e.weight))
        .collect();
    assert_eq!(
        weights,
        vec![("a:80".to_owned(), 1), ("10.0.0.2:80".to_owned(), 9)]
    );
}

#[test]
fn passive_health_is_the_older_name_of_circuit_breaker() {
    let config = parse(
        Path::new("gw.yaml"),
        &format!("pools:\n  p:\n    endpoints: [\"backend:8080\"]\n    passive_health: {{ consecutive_failures: 3, cooldown: 7s }}\n{ROUTES}"),
    )
    .unwrap();

    let breaker = &config.pools[0].breaker;
    assert_eq!(breaker.consecutive_failures, 3);
    assert_eq!(breaker.open_for, Duration::from_secs(7));
}

#[test]
fn invalid_traffic_settings_report_file_line_column_and_key() {
    let head = "pools:\n  p:\n    endpoints: [\"127.0.0.1:1\"]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{head}    circuit_breaker: {{ failure_ratio: 1.5, half_open_probes: 0, failure_statuses: [5xx, 429, 7xx, 600], max_ejected_percent: 120 }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:94: pools.p.circuit_breaker.failure_statuses[2]: expected a status code or a class such as 5xx, got \"7xx\"",
                "gw.yaml:4:99: pools.p.circuit_breaker.failure_statuses[3]: not an HTTP status code: 600",
                "gw.yaml:4:24: pools.p.circuit_breaker.failure_ratio: must be above 0 and at most 1, got 1.5",
                "gw.yaml:4:44: pools.p.circuit_breaker.half_open_probes: must be at least 1, got 0",
                "gw.yaml:4:105: pools.p.circuit_breaker.max_ejected_percent: must be at most 100, got 120",
            ],
        ),
        (
            format!("{head}    retries: {{ on_status: [503, 302], backoff: 0s, replay_body: 1MiB, budget: {{ percent: 150 }} }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:33: pools.p.retries.on_status[1]: only 4xx and 5xx answers can be retried, got 302",
                "gw.yaml:4:39: pools.p.retries.backoff: must be greater than 0, got 0s",
                "gw.yaml:4:52: pools.p.retries.replay_body: must be at most 64KiB (what the proxy keeps of a body), got 1048576 bytes",
                "gw.yaml:4:81: pools.p.retries.budget.percent: must be between 0 and 100, got 150",
            ],
        ),
        (
            format!("{head}    queue: {{ size: 10 }}\n    adaptive_limit: {{ latency: 1s }}\n{ROUTES}"),
            vec![
                "gw.yaml:4:5: pools.p.queue: only applies with max_in_flight",
                "gw.yaml:5:5: pools.p.adaptive_limit: only applies with max_in_flight",
            ],
        ),
        (
            format!("{head}    max_in_flight: 8\n    adaptive_limit: {{ min_in_flight: 9, latency: 0s }}\n{ROUTES}"),
            vec![
                "gw.yaml:5:41: pools.p.adaptive_limit.latency: must be greater than 0, got 0s",
                "gw.yaml:5:23: pools.p.adaptive_limit.min_in_flight: must be 1 to max_in_flight (8), got 9",
            ],
        ),
        (
            format!("{head}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    timeouts: {{ upstream_response: 0s, deadline_header: Host }}\n  - match: {{ path: /fixed }}\n    respond: {{ status: 200 }}\n    timeouts: {{ request: 1s }}\n"),
            vec![
                "gw.yaml:7:17: routes[0].timeouts.upstream_response: must be greater than 0, got 0s",
                "gw.yaml:7:40: routes[0].timeouts.deadline_header: \"Host\" is a header the gateway owns",
                "gw.yaml:10:5: routes[1].timeouts: only applies to routes with a pool",
            ],
        ),
        (
            format!("pools:\n  p:\n    endpoints: [{{ address: \"a:80\", weight: 2 }}, {{ address: \"b:80\", wieght: 2 }}, 7]\n{ROUTES}"),
            vec![
                "gw.yaml:3:68: pools.p.endpoints[1].wieght: unknown field `wieght`, expected `address` or `weight`",
                "gw.yaml:3:81: pools.p.endpoints[2]: invalid type: integer `7`, expected an endpoint such as \"backend:8080\" or { address: \"backend:8080\", weight: 3 }",
            ],
        ),
        (
            format!("pools:\n  p:\n    endpoints: [{{ address: \"a:80\", weight: 0 }}, {{ address: \"b:80\", weight: 1001 }}]\n{ROUTES}"),
            vec![
                "gw.yaml:3:36: pools.p.endpoints[0].weight: must be 1 to 1000, got 0",
                "gw.yaml:3:68: pools.p.endpoints[1].weight: must be 1 to 1000, got 1001",
            ],
        ),
        (
            format!("{head}  q:\n    endpoints: [\"127.0.0.1:2\"]\nroutes:\n  - match: {{ path_prefix: / }}\n    split: [{{ pool: p, weight: 0 }}, {{ pool: r, weight: 1 }}, {{ pool: p, weight: 0 }}]\n    sticky: \"cookie:\"\n    override_header: Authorization\n  - match: {{ path_prefix: /b }}\n    pool: p\n    sticky: subject\n  - match: {{ path_prefix: /c }}\n    pool: p\n    split: [{{ pool: q, weight: 1 }}]\n"),
            vec![
                "gw.yaml:8:39: routes[0].split[1].pool: unknown pool \"r\" (known: p, q)",
                "gw.yaml:8:63: routes[0].split[2].pool: \"p\" is listed twice",
                "gw.yaml:9:5: routes[0].sticky: unknown sticky key \"cookie:\", expected subject, client_ip, header:<name> or cookie:<name>",
                "gw.yaml:10:5: routes[0].override_header: \"Authorization\" is not a header name a client may choose",
                "gw.yaml:13:5: routes[1].sticky: only applies with split",
                "gw.yaml:16:5: routes[2].split: set either pool or split, not both",
            ],
        ),
        (
            format!("{head}  s:\n    endpoints: [\"127.0.0.1:2\"]\n    tls: {{ verify: false }}\nroutes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    mirror: {{ pool: s, percent: 101, max_in_flight: 0 }}\n  - match: {{ path_prefix: /b }}\n    pool: p\n    mirror: {{ pool: t }}\n"),
            vec![
                "gw.yaml:10:15: routes[0].mirror.pool: \"s\" has tls:; a mirror pool must speak plain HTTP",
                "gw.yaml:10:24: routes[0].mirror.percent: must be between 0 and 100, got 101",
                "gw.yaml:10:38: routes[0].mirror.max_in_flight: must be at least 1, got 0",
                "gw.yaml:13:15: routes[1].mirror.pool: unknown pool \"t\" (known: p, s)",
            ],
        ),
        (
            format!("{head}    max_in_flight: 0\n    max_in_flight_per_endpoint: 0\n{ROUTES}"),
            vec![
                "gw.yaml:4:5: pools.p.max_in_flight: must be at least 1, got 0",
                "gw.yaml:5:5: pools.p.max_in_flight_per_endpoint: must be at least 1, got 0",
            ],
        ),
    ];
    assert_each_reports(cases);
}

#[test]
fn invalid_edge_policies_report_file_line_column_and_key() {
    let pool = "pools:\n  p:\n    endpoints: [\"127.0.0.1:1\"]\n";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{pool}route_defaults:\n  ip_deny: [10.0.0.0/33]\nroutes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    ip_allow: [\"fd00::/8\", nowhere]\n"),
            vec![
                "gw.yaml:5:13: route_defaults.ip_deny[0]: invalid CIDR \"10.0.0.0/33\", expected e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\"",
                "gw.yaml:9:28: routes[0].ip_allow[1]: invalid CIDR \"nowhere\", expected e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or \"127.0.0.1\"",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    cors:\n      allow_origins: [\"*\", \"https://app.example.com/path\"]\n      allow_credentials: true\n"),
            vec![
                "gw.yaml:8:28: routes[0].cors.allow_origins[1]: invalid origin \"https://app.example.com/path\", expected \"*\", \"https://app.example.com\" or \"https://*.example.com\" (scheme and host, no path)",
                "gw.yaml:8:23: routes[0].cors.allow_origins[0]: \"*\" cannot be used with allow_credentials: true (browsers refuse it); list the origins",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    request_headers:\n      set: {{ Host: a, X-Trace: \"${{trace}}\" }}\n      remove: [Content-Length]\n    response_headers:\n      add: {{ X-Request-Id: x }}\n"),
            vec![
                "gw.yaml:9:16: routes[0].request_headers.remove[0]: content-length is a framing header, which the gateway manages",
                "gw.yaml:8:14: routes[0].request_headers.set.Host: host is an identity header, which only the gateway sets (use upstream_host to change the upstream Host)",
                "gw.yaml:8:23: routes[0].request_headers.set.X-Trace: unknown variable ${trace} in \"${trace}\": expected client_ip, request_id, route, host, path, or a capture of this route's match pattern",
                "gw.yaml:11:14: routes[0].response_headers.add.X-Request-Id: x-request-id is an identity header, which only the gateway sets",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: /old }}\n    redirect: {{ to: \"https://example.com/$2\", status: 200 }}\n  - match: {{ path_prefix: /api }}\n    pool: p\n    strip_prefix: true\n    rewrite: {{ match: \"^/api/(.*)$\", to: \"/$1\" }}\n  - match: {{ path_prefix: /v1 }}\n    pool: p\n    rewrite: {{ match: \"^/v1/(\", to: \"/\" }}\n"),
            vec![
                "gw.yaml:6:47: routes[0].redirect.status: 200 is not a redirect status: use 301, 302, 303, 307 or 308",
                "gw.yaml:10:5: routes[1].rewrite: set either strip_prefix or rewrite, not both",
                "gw.yaml:13:16: routes[2].rewrite.match: invalid regular expression \"^/v1/(\": unclosed group",
            ],
        ),
        (
            format!("{pool}route_defaults:\n  compression: {{ algorithms: [zstd, deflate, zstd], content_types: [json] }}\n{ROUTES}"),
            vec![
                "gw.yaml:5:37: route_defaults.compression.algorithms[1]: unknown algorithm \"deflate\", expected zstd, br or gzip",
                "gw.yaml:5:46: route_defaults.compression.algorithms[2]: zstd is listed twice",
                "gw.yaml:5:69: route_defaults.compression.content_types[0]: invalid media type \"json\", expected e.g. \"application/json\" or \"text/*\"",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    forward_auth: {{ url: \"https://sso/check\", timeout: 0s, copy_headers: [X-User, Host] }}\n"),
            vec![
                "gw.yaml:7:21: routes[0].forward_auth.url: expected an http:// URL of the auth service, got \"https://sso/check\"",
                "gw.yaml:7:47: routes[0].forward_auth.timeout: must be between 1ms and 30s",
                "gw.yaml:7:83: routes[0].forward_auth.copy_headers[1]: \"Host\" is not a header this policy may use",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    api_keys: {{ keys_file: no-such-keys-file, header: Content-Length }}\n"),
            vec![
                "gw.yaml:7:47: routes[0].api_keys.header: \"Content-Length\" is not a header name the gateway lets a policy use",
                "gw.yaml:7:17: routes[0].api_keys.keys_file: cannot read no-such-keys-file: No such file or directory (os error 2)",
            ],
        ),
        (
            format!("jwt:\n  issuers: [i]\n  audiences: [a]\n  jwks: {{ url: \"http://x\" }}\n{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    auth: required\n    basic_auth: {{ users_file: users }}\n"),
            vec![
                "gw.yaml:12:19: routes[0].basic_auth.users_file: cannot read users: No such file or directory (os error 2)",
                "gw.yaml:12:5: routes[0].basic_auth: cannot be combined with auth (both read the Authorization header)",
            ],
        ),
        (
            format!("{pool}routes:\n  - match: {{ path_prefix: / }}\n    pool: p\n    basic_auth: {{ users_file: no-such-users-file }}\n"),
            vec![
                "gw.yaml:7:19: routes[0].basic_auth.users_file: cannot read no-such-users-file: No such file or directory (os error 2)",
            ],
        ),
    ];
    assert_each_reports(cases);
}
