//! Medians across rounds, and the results files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) system: String,
    pub(crate) threads: usize,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) cpu_s_per_100k: f64,
    pub(crate) rss_mb: f64,
    pub(crate) upstream_reuse: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One row per (scenario, system, threads): the median of each figure over the rounds.
pub(crate) fn medians(samples: &[Row]) -> Vec<Row> {
    let mut groups: BTreeMap<(String, usize, String), Vec<&Row>> = BTreeMap::new();
    for s in samples {
        groups
            .entry((s.scenario.clone(), s.threads, s.system.clone()))
            .or_default()
            .push(s);
    }
    groups
        .into_iter()
        .map(|((scenario, threads, system), rows)| {
            let m = |f: fn(&Row) -> f64| median(rows.iter().map(|r| f(r)).collect());
            Row {
                scenario,
                system,
                threads,
                rps: m(|r| r.rps),
                p50_ms: m(|r| r.p50_ms),
                p99_ms: m(|r| r.p99_ms),
                p999_ms: m(|r| r.p999_ms),
                cpu_s_per_100k: m(|r| r.cpu_s_per_100k),
                rss_mb: m(|r| r.rss_mb),
                upstream_reuse: m(|r| r.upstream_reuse),
                requests: rows.iter().map(|r| r.requests).sum(),
                errors: rows.iter().map(|r| r.errors).sum(),
            }
        })
        .collect()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{model}, {cores} cores, {mem} GiB")
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn find<'a>(rows: &'a [Row], scenario: &str, system: &str, threads: usize) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.system == system && r.threads == threads)
}

/// The goals, each with the measured figure and whether it was met.
/// The cargo profile this binary was built with, from its directory (`target/<profile>/`).
fn build_profile() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

fn goals(rows: &[Row], instructions: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for threads in [1, 2] {
        if let (Some(g), Some(n)) = (
            find(rows, "passthrough", "gateway", threads),
            find(rows, "passthrough", "nginx", threads),
        ) {
            let ratio = g.rps / n.rps.max(1e-9);
            out.push(format!(
                "- passthrough, {threads} thread(s): gateway/nginx req/s = {ratio:.2} (goal >= 1.0: {}); p99 {:.2} ms vs {:.2} ms (goal: no worse: {})",
                verdict(ratio >= 1.0),
                g.p99_ms,
                n.p99_ms,
                verdict(g.p99_ms <= n.p99_ms)
            ));
        }
    }
    // HTTPS (issue 11): handshakes cost what the crypto library costs, so no worse than
    // nginx; keep-alive over TLS no further behind nginx than cleartext pass-through is.
    if let (Some(g), Some(n)) = (
        find(rows, "tls_new_connection_per_request", "gateway", 1),
        find(rows, "tls_new_connection_per_request", "nginx", 1),
    ) {
        let ratio = g.rps / n.rps.max(1e-9);
        out.push(format!(
            "- new TLS connections (ECDSA P-256 handshakes) per second: gateway {:.0} vs nginx {:.0} = {ratio:.2} (goal >= 1.0: {})",
            g.rps,
            n.rps,
            verdict(ratio >= 1.0)
        ));
    }
    let ratio_of = |scenario: &str| {
        let g = find(rows, scenario, "gateway", 1)?;
        let n = find(rows, scenario, "nginx", 1)?;
        Some(g.rps / n.rps.max(1e-9))
    };
    if let (Some(tls), Some(plain)) = (ratio_of("tls_passthrough"), ratio_of("passthrough")) {
        out.push(format!(
            "- keep-alive over TLS: gateway/nginx req/s = {tls:.2}, cleartext pass-through {plain:.2} (goal: within the pass-through ratio: {})",
            verdict(tls >= plain)
        ));
    }
    if let (Some(p), Some(b)) = (
        find(rows, "policy_chain", "gateway", 1),
        find(rows, "policy_chain", "gateway_passthrough", 1),
    ) {
        let loss = 1.0 - p.rps / b.rps.max(1e-9);
        out.push(format!(
            "- policy chain: {:.1}% fewer req/s than pass-through in the same rounds (goal <= 10%: {})",
            loss * 100.0,
            verdict(loss <= 0.10)
        ));
    }
    if let Some(g) = find(rows, "passthrough", "gateway", 1) {
        out.push(format!(
            "- upstream connection reuse under steady load: {:.4}% (goal >= 99.9%: {})",
            g.upstream_reuse * 100.0,
            verdict(g.upstream_reuse >= 0.999)
        ));
    }
    if let (Some(g), Some(n)) = (
        find(rows, "idle_connections_10000", "gateway", 1),
        find(rows, "idle_connections_10000", "nginx", 1),
    ) {
        let ratio = g.rss_mb / n.rss_mb.max(1e-9);
        out.push(format!(
            "- RSS with 10k idle keep-alive clients: {:.1} MiB vs nginx {:.1} MiB = {ratio:.2}x (goal <= 2x: {})",
            g.rss_mb,
            n.rss_mb,
            verdict(ratio <= 2.0)
        ));
    }
    // Issue 13 asks for the cost, not a goal: each system's compressed answer against its
    // own uncompressed one, and the gateway against nginx at the same gzip level.
    for coding in ["gzip", "zstd"] {
        let scenario = format!("json_20k_{coding}");
        for system in ["gateway", "nginx"] {
            let (Some(c), Some(i)) = (
                find(rows, &scenario, system, 1),
                find(rows, "json_20k_identity", system, 1),
            ) else {
                continue;
            };
            out.push(format!(
                "- 20 KiB JSON, {coding}, {system}: {:.0} req/s ({:.2}x its uncompressed {:.0}), CPU {:.2} s per 100k requests (uncompressed {:.2})",
                c.rps,
                c.rps / i.rps.max(1e-9),
                i.rps,
                c.cpu_s_per_100k,
                i.cpu_s_per_100k
            ));
        }
    }
    out.extend(e2e_goals(rows));
    if let (Some(g), Some(n)) = (
        instructions["gateway"].as_u64(),
        instructions["nginx"].as_u64(),
    ) {
        let ratio = g as f64 / n.max(1) as f64;
        out.push(format!(
            "- instructions per proxied request (callgrind, bench/callgrind.sh --compare): gateway {g} vs nginx {n} = {ratio:.2}x (goal <= 2x: {})",
            verdict(ratio <= 2.0)
        ));
    }
    out
}

/// What the original stack (nginx, Express Gateway, Express, Redis; measured side by side in
/// issue 12) served on this machine kind, per scenario: the end-to-end goal is 10x each.
/// `None` where the issue has no figure for the kind.
fn original(scenario: &str) -> Option<f64> {
    let amd = machine().contains("AMD");
    match (scenario, amd) {
        ("e2e_get_todos_cached", true) => Some(2_874.0),
        ("e2e_get_todos_cached", false) => Some(1_330.0),
        ("e2e_get_todos_uncached", true) => Some(1_454.0),
        ("e2e_post_todos", true) => Some(1_520.0),
        ("e2e_job_drain", true) => Some(1_285.0),
        _ => None,
    }
}

fn e2e_goals(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for scenario in [
        "e2e_get_todos_cached",
        "e2e_get_todos_uncached",
        "e2e_post_todos",
        "e2e_job_drain",
    ] {
        let Some(r) = rows.iter().find(|r| r.scenario == scenario) else {
            continue;
        };
        let unit = if scenario == "e2e_job_drain" {
            "jobs/s"
        } else {
            "req/s"
        };
        let Some(base) = original(scenario) else {
            out.push(format!(
                "- {scenario}: {:.0} {unit} (the issue has no figure of the original stack on this machine kind)",
                r.rps
            ));
            continue;
        };
        let ratio = r.rps / base;
        let latency = if scenario == "e2e_get_todos_cached" {
            format!(
                ", p99 {:.1} ms (goal <= 30 ms: {})",
                r.p99_ms,
                verdict(r.p99_ms <= 30.0)
            )
        } else {
            String::new()
        };
        out.push(format!(
            "- {scenario}: {:.0} {unit} = {ratio:.1}x the original stack's {base:.0} (goal >= 10x: {}){latency}",
            r.rps,
            verdict(ratio >= 10.0)
        ));
    }
    out
}

/// Rows of end-to-end scenarios start with this; the rest are the proxy benchmark's.
const E2E: &str = "e2e_";

fn row_json(r: &Row) -> serde_json::Value {
    serde_json::json!({
        "scenario": r.scenario, "system": r.system, "threads": r.threads,
        "rps": r.rps.round(), "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "p999_ms": r.p999_ms,
        "cpu_s_per_100k": r.cpu_s_per_100k, "rss_mb": r.rss_mb, "upstream_reuse": r.upstream_reuse,
        "requests": r.requests, "errors": r.errors,
    })
}

fn row_from_json(v: &serde_json::Value) -> Row {
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Row {
        scenario: v["scenario"].as_str().unwrap_or_default().to_owned(),
        system: v["system"].as_str().unwrap_or_default().to_owned(),
        threads: v["threads"].as_u64().unwrap_or(0) as usize,
        rps: f("rps"),
        p50_ms: f("p50_ms"),
        p99_ms: f("p99_ms"),
        p999_ms: f("p999_ms"),
        cpu_s_per_100k: f("cpu_s_per_100k"),
        rss_mb: f("rss_mb"),
        upstream_reuse: f("upstream_reuse"),
        requests: v["requests"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
    }
}

/// Write `results.json` and `RESULTS.md` in `dir`: `rows` from the benchmark named `kind`
/// (`proxy` or `e2e`, described by `settings`) replace that benchmark's earlier rows; the
/// other benchmark's rows from the last run are kept.
pub(crate) fn write(
    dir: &Path,
    kind: &str,
    rows: &[Row],
    settings: serde_json::Value,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("results.json");
    let previous: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mine = |r: &Row| (kind == "e2e") == r.scenario.starts_with(E2E);
    let mut all: Vec<Row> = previous["rows"]
        .as_array()
        .map(|a| a.iter().map(row_from_json).filter(|r| !mine(r)).collect())
        .unwrap_or_default();
    all.extend(rows.iter().cloned());
    let mut all_settings = previous["settings"].clone();
    if !all_settings.is_object() {
        all_settings = serde_json::json!({});
    }
    all_settings[kind] = settings;
    let rows = &all[..];
    let goals = goals(rows, &all_settings["proxy"]["instructions"]);
    eprintln!("goals (all of {}):", dir.join("RESULTS.md").display());
    for goal in &goals {
        eprintln!("{goal}");
    }
    let (machine, date) = (machine(), today());
    let json = serde_json::json!({
        "machine": machine,
        "date": date,
        "settings": all_settings,
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;

    let describe = |k: &str| {
        let s = &all_settings[k];
        if s.is_null() {
            format!("`{k}`: not run")
        } else {
            format!("`bench {k}` ({} build) with {s}", build_profile())
        }
    };
    let mut md = format!(
        "# Benchmark results\n\nMachine: {machine}. Date: {date}. Generated by {} and {} \
         (wrk with one thread; medians across interleaved rounds).\n\
         The machine is shared and noisy: compare systems within this file, not across runs. \
         In `e2e_*` tables, `threads` is the number of backend replicas and the CPU and memory \
         figures cover the whole stack (gateway, replicas, PostgreSQL, Redis).\n\n## Goals\n\n{}\n",
        describe("proxy"),
        describe("e2e"),
        goals.join("\n")
    );
    let mut scenarios: Vec<(String, usize)> = rows
        .iter()
        .map(|r| (r.scenario.clone(), r.threads))
        .collect();
    scenarios.dedup();
    for (scenario, threads) in scenarios {
        let unit = if scenario.starts_with(E2E) {
            "backend replica"
        } else {
            "thread"
        };
        md.push_str(&format!(
            "\n## {scenario} ({threads} {unit}{})\n\n| system | req/s | p50 ms | p99 ms | p99.9 ms | CPU s / 100k req | peak RSS MiB | upstream reuse | errors |\n|---|---|---|---|---|---|---|---|---|\n",
            if threads == 1 { "" } else { "s" }
        ));
        for r in rows
            .iter()
            .filter(|r| r.scenario == scenario && r.threads == threads)
        {
            md.push_str(&format!(
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.4} | {} |\n",
                r.system,
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.cpu_s_per_100k,
                r.rss_mb,
                r.upstream_reuse,
                r.errors
            ));
        }
    }
    std::fs::write(dir.join("RESULTS.md"), md)?;
    Ok(())
}
