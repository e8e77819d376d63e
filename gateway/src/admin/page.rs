//! The status page, rendered on the server from the same [`Status`] that `/status.json`
//! serializes: plain HTML that needs no script to read; `page.js` (a few lines) fetches the
//! page again every 2 s and swaps its body in. Every value is HTML-escaped: route names,
//! paths and a rejected edit's errors come from the config file.

use std::fmt::Write as _;

use super::status::{EndpointStatus, PoolStatus, Status};

/// `&`, `<`, `>`, `"` and `'` as entities.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-30 15:53:52 UTC`.
fn utc(secs: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(secs).map_or_else(
        |_| secs.to_string(),
        |t| {
            let t = t.to_datetime();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    )
}

fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m {s}s"),
        (0, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn badge(state: &str) -> String {
    format!(
        "<span class=\"state {}\">{}</span>",
        esc(state),
        esc(&state.replace('_', "-"))
    )
}

/// An endpoint's state in one word: ejected (breaker open), failing (active check),
/// half_open (a probe decides), unknown (not checked yet), healthy, or down.
pub(crate) fn endpoint_state(e: &EndpointStatus) -> &'static str {
    match (e.breaker, e.check) {
        ("open", _) => "ejected",
        (_, "failing") => "failing",
        ("half_open", _) => "half_open",
        (_, "unknown") => "unknown",
        _ if e.healthy => "healthy",
        _ => "down",
    }
}

fn pool(out: &mut String, pool: &PoolStatus) {
    let _ = write!(
        out,
        "<h3>{} {}</h3><p class=\"muted\">{}",
        esc(&pool.name),
        badge(if pool.ready { "healthy" } else { "down" }),
        esc(&pool.balance)
    );
    if let (Some(max), Some(in_flight), Some(queued)) =
        (pool.max_in_flight, pool.in_flight, pool.queued)
    {
        let _ = write!(out, " · {in_flight} in flight of {max}, {queued} queued");
    }
    out.push_str(
        "</p><table><thead><tr><th>endpoint</th><th>state</th><th>active check</th>\
         <th>breaker</th><th>in flight</th><th>latency ms</th></tr></thead><tbody>",
    );
    for e in &pool.endpoints {
        let state = endpoint_state(e);
        let _ = write!(
            out,
            "<tr data-endpoint=\"{a}\" data-state=\"{state}\"><td><code>{a}</code></td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            badge(state),
            esc(e.check),
            esc(&e.breaker.replace('_', "-")),
            e.in_flight,
            number(e.latency_ms, 1),
            a = esc(&e.address),
        );
    }
    out.push_str("</tbody></table>");
}

/// The whole page.
pub(crate) fn render(status: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>gateway status</title><link rel=\"stylesheet\" href=\"/status.css\">\
         <script src=\"/status.js\" defer></script></head><body><div id=\"page\">\
         <header><h1>gateway {}</h1><p>up {} since {} · {} routes, {} pools · \
         <span class=\"muted\">rendered {}</span></p></header><main>",
        esc(status.version),
        duration(status.uptime_seconds),
        utc(i64::try_from(status.started_at).unwrap_or(0)),
        status.routes.len(),
        status.pools.len(),
        utc(i64::try_from(status.started_at + status.uptime_seconds).unwrap_or(0)),
    );

    out.push_str("<section><h2>Pools</h2>");
    for p in &status.pools {
        pool(&mut out, p);
    }
    out.push_str("</section>");

    out.push_str(
        "<section><h2>Routes</h2><table><thead><tr><th>route</th><th>match</th>\
         <th>target</th><th>policies, in order</th><th>auth</th><th>rate limits</th>\
         <th>req/s (1 min)</th><th>5xx %</th></tr></thead><tbody>",
    );
    for r in &status.routes {
        let limits = if r.rate_limits.is_empty() {
            "–".to_owned()
        } else {
            r.rate_limits.join("; ")
        };
        let _ = write!(
            out,
            "<tr data-route=\"{n}\"><td><code>{n}</code></td><td><code>{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.matcher),
            esc(&r.target),
            esc(&r.policies.join(" › ")),
            esc(r.auth),
            esc(&limits),
            number(r.requests_per_second, 2),
            number(r.error_ratio.map(|e| e * 100.0), 1),
            n = esc(&r.name),
        );
    }
    out.push_str("</tbody></table></section>");

    let _ = write!(
        out,
        "<section><h2>Config and reloads</h2><p><code>{}</code> \
         <span class=\"muted\">· hash {}</span></p><table><thead><tr><th>when</th>\
         <th>result</th><th>hash</th><th>errors</th></tr></thead><tbody>",
        esc(&status.config.source),
        esc(status.config.hash.get(..16).unwrap_or(&status.config.hash)),
    );
    for reload in &status.config.reloads {
        let errors = if reload.errors.is_empty() {
            "–".to_owned()
        } else {
            format!("<pre>{}</pre>", esc(&reload.errors.join("\n")))
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{errors}</td></tr>",
            utc(i64::try_from(reload.at).unwrap_or(0)),
            badge(reload.result),
            esc(reload.hash.get(..16).unwrap_or(&reload.hash)),
        );
    }
    out.push_str("</tbody></table></section>");

    out.push_str(
        "<section><h2>Listeners and certificates</h2><table><thead><tr><th>listener</th>\
         <th>address</th></tr></thead><tbody>",
    );
    for l in &status.listeners {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            esc(l.name),
            esc(&l.address)
        );
    }
    out.push_str("</tbody></table>");
    if status.certificates.is_empty() {
        out.push_str("<p class=\"muted\">No certificates (no HTTPS listener).</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>certificate</th><th>source</th><th>expires</th>\
             <th>left</th></tr></thead><tbody>",
        );
        for c in &status.certificates {
            let renew = if c.days_left < 14.0 {
                badge("failing")
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.1} days {renew}</td></tr>",
                esc(&c.names.join(", ")),
                esc(&c.source),
                utc(c.not_after),
                c.days_left,
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str(
        "</section></main><footer class=\"muted\">Refreshed every 2 s by a few lines of \
         script. Also: <a href=\"/status.json\">/status.json</a> · \
         <a href=\"/metrics\">/metrics</a> · <a href=\"/readyz\">/readyz</a></footer>\
         </div></body></html>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_config_is_escaped() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn times_are_utc_and_durations_short() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_054_400), "2026-11-30 16:00:00 UTC");
        assert_eq!(duration(59), "0m 59s");
        assert_eq!(duration(3 * 3600 + 61), "3h 1m 1s");
        assert_eq!(duration(2 * 86_400 + 7200), "2d 2h 0m");
    }
}
