//! Logs against the real binary (issue 13): with `log_format = "json"` every line on stderr is
//! one JSON object; in both formats the lines logged while a request is served carry that
//! request's id.

mod common;

use common::http_client::{cas_path, get, put};
use common::Tessera;

#[test]
fn json_logs_are_one_object_per_line_with_a_request_id_per_request() {
    let mut server = Tessera::start(
        &["--log", "tessera=debug"],
        &[("TESSERA_LOG_FORMAT", "json")],
    );
    let addr = server.addr();
    assert_eq!(put(addr, &cas_path(b"a"), b"a").status, 200);
    assert_eq!(get(addr, &cas_path(b"a")).status, 200);
    assert_eq!(get(addr, "/cache/0123").status, 404);
    server.stop_expecting_exit_0();

    let log = server.full_log();
    let mut request_ids = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
        if value["fields"]["message"] == "request done" {
            let id = value["span"]["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a request's line without its id: {line}"));
            request_ids.push((id.to_owned(), value["fields"]["outcome"].clone()));
        }
    }
    assert_eq!(request_ids.len(), 3, "{log}");
    // Each request's line is written after its response, by whichever executor served it, so
    // lines of back-to-back requests on two executors may land in either order.
    let mut outcomes: Vec<_> = request_ids
        .iter()
        .map(|(_, o)| o.as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["hit", "miss", "stored"]);
    let unique: std::collections::BTreeSet<_> = request_ids.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), 3, "request ids repeat: {request_ids:?}");
}

#[test]
fn text_logs_end_each_request_line_with_its_request_id() {
    let mut server = Tessera::start(&["--log", "tessera=debug"], &[]);
    let addr = server.addr();
    assert_eq!(put(addr, &cas_path(b"a"), b"a").status, 200);
    assert_eq!(get(addr, &cas_path(b"a")).status, 200);
    assert_eq!(get(addr, "/cache/0123").status, 404);
    server.stop_expecting_exit_0();

    let log = server.full_log();
    let mut request_ids = Vec::new();
    for line in log.lines() {
        let id = line
            .rsplit_once(" request_id=")
            .map(|(_, id)| id.to_owned());
        if line.contains("request done") {
            let id = id.unwrap_or_else(|| panic!("a request's line without its id: {line}"));
            let (thread, sequence) = id.split_once('-').expect("THREAD-SEQUENCE");
            assert!(
                u32::from_str_radix(thread, 16).is_ok()
                    && u64::from_str_radix(sequence, 16).is_ok(),
                "{line}"
            );
            request_ids.push(id);
        } else if line.contains("listening on") || line.contains("draining") {
            assert!(id.is_none(), "a line outside any request has an id: {line}");
        }
    }
    assert_eq!(request_ids.len(), 3, "{log}");
    let unique: std::collections::BTreeSet<_> = request_ids.iter().collect();
    assert_eq!(unique.len(), 3, "request ids repeat: {request_ids:?}");
}

#[test]
fn an_unknown_log_format_stops_start_up_naming_the_setting() {
    let output = common::run_tessera(&["serve", "--log-format", "xml"], &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stderr.contains("log_format"), "{output:?}");
}
