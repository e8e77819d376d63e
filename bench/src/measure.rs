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
