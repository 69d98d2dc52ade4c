//! The status page in a real browser (issue 13): after real traffic, headless Chromium (Debian
//! `chromium`) renders `GET /` and the page shows the numbers `GET /status.json` reports. The
//! screenshot goes to `target/tmp/ops-status-page/status.png` (printed). Clients that do not
//! ask for HTML keep the plain-text index. `TESSERA_SKIP_REAL_CLIENTS=1` skips the browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::http_client::{cas_path, get, put, request_head, send_raw, Rng};
use common::Tessera;

/// Virtual time Chromium gives the page's script before it dumps the DOM: the first poll of
/// `/status.json` completes in milliseconds.
const VIRTUAL_TIME_BUDGET_MS: &str = "3000";

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    let binary = "chromium";
    Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{binary}` ({e}); install it with `bash tests/install-deps.sh` or set TESSERA_SKIP_REAL_CLIENTS=1")
        })
}

fn traffic(addr: std::net::SocketAddr) {
    let mut rng = Rng::new(0x57a7_0513);
    let blobs: Vec<Vec<u8>> = (0..3).map(|i| rng.bytes(2000 + i * 10)).collect();
    for blob in &blobs {
        assert_eq!(put(addr, &cas_path(blob), blob).status, 200);
    }
    for i in 0..5 {
        assert_eq!(get(addr, &cas_path(&blobs[i % 3])).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(addr, &cas_path(&rng.bytes(8))).status, 404);
    }
    let entry = rng.bytes(500);
    assert_eq!(put(addr, "/cache/beef01", &entry).status, 200);
    assert_eq!(get(addr, "/cache/beef01").status, 200);
    assert_eq!(get(addr, "/cache/beef02").status, 404);
    assert_eq!(get(addr, "/cache/beef03").status, 404);
}

/// The text of the element with `id` in `dom` (the dumped DOM keeps our markup's shape:
/// `id="X" other="…">TEXT<`).
fn element_text<'d>(dom: &'d str, id: &str) -> &'d str {
    let marker = format!("id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} in the rendered page:\n{dom}"));
    let start = dom[at..].find('>').expect("the tag ends") + at + 1;
    let end = dom[start..].find('<').expect("the element ends") + start;
    &dom[start..end]
}

/// As the page's `toFixed(1)` shows a ratio: ties round up (Rust's `{:.1}` rounds them to
/// even: 1.25 is "1.2" here and "1.3" in JavaScript).
fn percent(ratio: f64) -> String {
    format!("{:.1}%", (ratio * 1000.0).round() / 10.0)
}

fn millis(us: &serde_json::Value) -> String {
    format!("{:.3}", us.as_u64().expect("microseconds") as f64 / 1000.0)
}

#[test]
fn only_browsers_get_the_page_and_curl_keeps_the_text_index() {
    let mut server = Tessera::start(&[], &[]);
    let addr = server.addr();
    let curl = send_raw(addr, &request_head("GET", "/", 0, &[("accept", "*/*")])).unwrap();
    assert_eq!(curl.status, 200);
    assert!(
        curl.text()
            .starts_with("Tessera build cache. Mounted here:"),
        "{curl:?}"
    );
    let browser = send_raw(
        addr,
        &request_head("GET", "/", 0, &[("accept", "text/html,*/*;q=0.8")]),
    )
    .unwrap();
    assert_eq!(browser.status, 200);
    assert_eq!(
        browser.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(browser.text().contains("/status.json"));
    let json = get(addr, "/status.json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
    server.stop_expecting_exit_0();
}

#[test]
fn headless_chromium_shows_the_numbers_of_status_json() {
    if std::env::var_os("TESSERA_SKIP_REAL_CLIENTS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: TESSERA_SKIP_REAL_CLIENTS=1 (headless Chromium status page test)");
        return;
    }
    let mut server = Tessera::start(&["--shards", "2"], &[]);
    let addr = server.addr();
    traffic(addr);
    let status: serde_json::Value =
        serde_json::from_slice(&get(addr, "/status.json").body).unwrap();
    let url = format!("http://{addr}/");
    let profile = tempfile::tempdir().unwrap();
    let dump = chromium(
        &[
            &format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
            "--dump-dom",
            &url,
        ],
        profile.path(),
    );
    let dom = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.status.success(),
        "chromium --dump-dom: {:?}\n{}",
        dump.status,
        String::from_utf8_lossy(&dump.stderr)
    );
    assert_eq!(element_text(&dom, "fetch-error"), "", "{dom}");
    assert_eq!(
        element_text(&dom, "version"),
        status["version"].as_str().unwrap()
    );

    let protocols = status["protocols"].as_array().unwrap();
    let names: Vec<&str> = protocols
        .iter()
        .map(|p| p["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bazel-http", "gradle"], "{status}");
    for p in protocols {
        let name = p["protocol"].as_str().unwrap();
        for field in ["requests", "hits", "misses"] {
            assert_eq!(
                element_text(&dom, &format!("{field}-{name}")),
                p[field].to_string(),
                "{field} of {name}"
            );
        }
        let ratio = percent(p["hit_ratio"].as_f64().unwrap());
        assert_eq!(element_text(&dom, &format!("hit-ratio-{name}")), ratio);
    }
    // The traffic above, as the page shows it: 5 of 7 Bazel reads hit, 1 of 3 Gradle reads.
    assert_eq!(element_text(&dom, "hit-ratio-bazel-http"), "71.4%");
    assert_eq!(element_text(&dom, "hit-ratio-gradle"), "33.3%");

    for o in status["operations"].as_array().unwrap() {
        let op = o["operation"].as_str().unwrap();
        assert_eq!(
            element_text(&dom, &format!("count-{op}")),
            o["count"].to_string()
        );
        assert_eq!(
            element_text(&dom, &format!("p50-{op}")),
            millis(&o["p50_us"])
        );
        assert_eq!(
            element_text(&dom, &format!("p99-{op}")),
            millis(&o["p99_us"])
        );
        assert_eq!(
            element_text(&dom, &format!("p999-{op}")),
            millis(&o["p999_us"])
        );
    }
    for s in status["shards"].as_array().unwrap() {
        let shard = s["shard"].as_u64().unwrap();
        assert_eq!(
            element_text(&dom, &format!("objects-{shard}")),
            s["objects"].to_string()
        );
        let fill = s["bytes_used"].as_f64().unwrap() / s["budget_bytes"].as_f64().unwrap();
        assert_eq!(element_text(&dom, &format!("fill-{shard}")), percent(fill));
    }
    assert_eq!(
        element_text(&dom, "evictions"),
        status["evicted_segments"].to_string()
    );
    for namespace in ["bazel", "gradle"] {
        assert!(
            dom.contains(&format!("<td class=\"namespace\">{namespace}</td>")),
            "namespace {namespace} missing:\n{dom}"
        );
        let row = status["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["namespace"] == namespace)
            .unwrap_or_else(|| panic!("{namespace} not in {status}"));
        let stored = row["stored_objects"].as_u64().unwrap();
        assert!(stored > 0, "{namespace} stores what the test put: {row}");
        assert!(
            dom.contains(&format!(
                "<td class=\"namespace\">{namespace}</td><td>{stored} / "
            )),
            "stored objects of {namespace} missing:\n{dom}"
        );
    }

    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-status-page");
    std::fs::create_dir_all(&out).unwrap();
    let png = out.join("status.png");
    let _ = std::fs::remove_file(&png);
    let shot = chromium(
        &[
            &format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1000",
            &url,
        ],
        profile.path(),
    );
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    eprintln!("status page screenshot: {}", png.display());
    server.stop_expecting_exit_0();
}
