//! A real browser for tests: headless Chromium (Debian's `chromium`, which
//! `scripts/install-deps.sh test` installs) loads a page, runs its scripts, and gives back
//! the rendered DOM and a screenshot.

use std::path::PathBuf;
use std::process::Command;

/// Where tests leave screenshots: `target/<profile>/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir layout");
    let dir = profile_dir.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts");
    dir
}

/// A Chromium with a fresh profile (no cache, no remembered preflights).
fn chromium(profile: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless=new",
        // The tests run as root in CI, where Chromium's sandbox cannot start.
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        // Scripts run until the page is idle (network included) or this much virtual time
        // has passed, whichever comes first.
        "--virtual-time-budget=15000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    cmd
}

/// Load `url`, let its scripts finish, and return the DOM as the page left it; a
/// screenshot of the page goes to `artifacts_dir()/<name>.png`.
pub fn rendered_dom(url: &str, name: &str) -> String {
    rendered_dom_in(url, name, (900, 300))
}

/// [`rendered_dom`] with the screenshot's window size.
pub fn rendered_dom_in(url: &str, name: &str, (width, height): (u32, u32)) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let dom = crate::run_ok(
        chromium(&profile).arg("--dump-dom").arg(url),
        &format!("chromium --dump-dom {url} (scripts/install-deps.sh test installs it)"),
    );
    let shot = artifacts_dir().join(format!("{name}.png"));
    let profile = tempfile::tempdir().expect("tempdir");
    let status = chromium(&profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        status.status.success() && shot.exists(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    dom
}
