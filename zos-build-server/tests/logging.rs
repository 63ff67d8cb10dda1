//! The server's own log fits where it goes: no colour codes in a file, one
//! JSON object per line with `log-format: json`, and the build's id on the
//! lines about a build. The real binary, its standard error in a file.

use zos_build_testkit::server as support;

use serde_json::Value;
use support::{Harness, DOCKER};
use zos_build_core::BuildStatus;

const WIDGET: &str =
    "#!/bin/sh\nset -e\necho building\nmkdir -p /target\necho x > /target/widget.tar.gz\n";

#[tokio::test]
async fn a_log_written_to_a_file_has_no_colour_codes() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let commit = h.commit(WIDGET);
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let _ = child.kill();
    let _ = child.wait();
    let output = h.server_output();
    assert!(output.contains("build started"), "{output}");
    assert!(
        !output.contains('\u{1b}'),
        "colour codes in a file:\n{output}"
    );
}

#[tokio::test]
async fn json_logs_carry_the_build_id_on_every_line_about_a_build() {
    let _docker = DOCKER.lock().await;
    let mut h = Harness::prepare("log-format: json\n").await;
    let mut child = h.spawn_binary(env!("CARGO_BIN_EXE_zos-build-server")).await;
    let commit = h.commit(WIDGET);
    let ids = h.push(&commit).await;
    let record = h.finished(&ids[0]).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    let _ = child.kill();
    let _ = child.wait();
    let output = h.server_output();
    let lines: Vec<Value> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let about_the_build: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            let message = line["fields"]["message"].as_str().unwrap_or_default();
            message == "build started" || message == "build ended"
        })
        .collect();
    assert_eq!(about_the_build.len(), 2, "{output}");
    for line in about_the_build {
        assert_eq!(line["span"]["build"], ids[0].as_str(), "{line}");
    }
}
