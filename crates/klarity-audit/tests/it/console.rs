//! The web console in a real browser: `serve` runs as shipped, and Playwright drives Debian's
//! Chromium through `tests/browser/console.mjs` (sign in with the one-time link and the admin
//! token, a wrong token refused, tenants with their state, a pause with its reason and a resume
//! by keyboard, a token issued and used then revoked and refused, a dead letter with its reason
//! made deliverable by updating the tenant and replayed until delivered, the audit-trail viewer
//! (events by principal, JSON, CSV and NDJSON export, a sample query charted and saved, the
//! history), viewer links (only their tenant, read-only, refused once expired, each use recorded),
//! the catalog, a forged change refused, sign out, no request outside the relay). The script
//! takes the screenshots `docs/console.md` shows: with `KLARITY_UPDATE_SCREENSHOTS=1` it writes
//! them into `docs/console/`.

use std::{path::Path, process::Command};

use crate::{serve::Serve, support::Dir};

#[test]
fn the_console_signs_in_shows_tenants_and_pauses_and_resumes_them_in_chromium() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: `npm ci` in {} (./scripts/test does it)",
        browser.display()
    );
    let dir = Dir::new();
    let serve = Serve::start(&dir.path().join("data"));
    let banner = &serve.banner;
    let link = banner
        .split_whitespace()
        .find(|w| w.contains("/console/sign-in?code="))
        .unwrap_or_else(|| panic!("no sign-in link in\n{banner}"));
    let admin_token = banner
        .split_whitespace()
        .find(|w| w.starts_with("kadm_"))
        .unwrap_or_else(|| panic!("no admin token in\n{banner}"));
    let shots = if std::env::var_os("KLARITY_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console")
    } else {
        dir.path().join("shots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser.join("console.mjs"))
        .args([&format!("http://{}", serve.relay), link, admin_token, shots.to_str().unwrap()])
        .output()
        .expect("node (Node.js) runs the browser tests");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("console ok"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for shot in [
        "sign-in.png",
        "tenants.png",
        "tenant-paused.png",
        "tokens.png",
        "dead-letters.png",
        "event.png",
        "tenant.png",
        "trail.png",
        "trail-event.png",
        "sql.png",
        "viewer.png",
        "viewer-expired.png",
        "verify.png",
        "catalog.png",
        "tenants-phone.png",
        "sql-phone.png",
    ] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "{shot} was taken");
    }
}
