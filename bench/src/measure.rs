//! Load generation (wrk) and process accounting (/proc).

use std::path::Path;
use std::process::Command;

/// What one wrk run reported.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WrkResult {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
}

const WRK_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// Run wrk (one thread: the machine has two cores and the proxy needs the other).
pub(crate) fn wrk(
    dir: &Path,
    url: &str,
    connections: usize,
    seconds: u64,
    headers: &[String],
) -> anyhow::Result<WrkResult> {
    wrk_with(dir, url, connections, seconds, headers, "")
}

/// [`wrk`] with Lua run before the reporter (e.g. setting `wrk.method` and `wrk.body`).
pub(crate) fn wrk_with(
    dir: &Path,
    url: &str,
    connections: usize,
    seconds: u64,
    headers: &[String],
    lua: &str,
) -> anyhow::Result<WrkResult> {
    let script = dir.join("report.lua");
    std::fs::write(&script, format!("{lua}{WRK_SCRIPT}"))?;
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "-s",
    ])
    .arg(&script);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| anyhow::anyhow!("wrk printed no result: {text}"))?;
    let n: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(n.len() == 6, "unexpected wrk result {line}");
    Ok(WrkResult {
        requests: n[0] as u64,
        errors: n[1] as u64,
        seconds: n[2] / 1e6,
        p50_ms: n[3] / 1e3,
        p99_ms: n[4] / 1e3,
        p999_ms: n[5] / 1e3,
    })
}

/// Run h2load over HTTP/2 (TLS, ALPN `h2`): `connections` connections with `streams`
/// concurrent streams each, for `seconds`. h2load reports no latency percentiles: the
/// result's p50 is the mean time per request and its p99 and p99.9 are 0.
pub(crate) fn h2load(
    url: &str,
    connections: usize,
    streams: usize,
    seconds: u64,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("h2load")
        .args(["-t1", &format!("-c{connections}"), &format!("-m{streams}")])
        .args([&format!("-D{seconds}"), "--warm-up-time=1"])
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| text.lines().find_map(|l| l.trim().strip_prefix(prefix));
    let numbers = |s: &str| -> Vec<f64> {
        s.split([',', ' '])
            .filter_map(|w| w.trim_end_matches('s').parse().ok())
            .collect()
    };
    // "finished in 5.00s, 23423.40 req/s, 1.20MB/s"
    let finished = field("finished in ").map(numbers).unwrap_or_default();
    // "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    let requests = field("requests: ").map(numbers).unwrap_or_default();
    // "time for request:  min  max  mean  sd  +/- sd", with units
    let mean_ms = field("time for request:").and_then(|l| {
        let mean = l.split_whitespace().nth(2)?;
        let (value, scale) = match mean.strip_suffix("ms") {
            Some(v) => (v, 1.0),
            None => match mean.strip_suffix("us") {
                Some(v) => (v, 1e-3),
                None => (mean.strip_suffix('s')?, 1e3),
            },
        };
        Some(value.parse::<f64>().ok()? * scale)
    });
    anyhow::ensure!(
        finished.len() >= 2 && requests.len() >= 6,
        "h2load printed no result: {text}"
    );
    Ok(WrkResult {
        requests: requests[3] as u64,
        errors: (requests[4] + requests[5]) as u64,
        seconds: finished[0],
        p50_ms: mean_ms.unwrap_or(0.0),
        p99_ms: 0.0,
        p999_ms: 0.0,
    })
}

/// `pid` and every process below it (nginx workers are children of its master).
pub(crate) fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat =
                    std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // Field 4 (after the parenthesised command) is the parent pid.
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(parent) && !all.contains(&child) {
                    all.push(child);
                }
            }
        }
        i += 1;
    }
    all
}

/// User + system CPU seconds used so far by a process tree.
pub(crate) fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0
}

/// Sum of a /proc/<pid>/status field in MiB (`VmHWM` peak, `VmRSS` current).
pub(crate) fn memory_mb(pids: &[u32], field: &str) -> f64 {
    let kb: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum();
    kb as f64 / 1024.0
}
