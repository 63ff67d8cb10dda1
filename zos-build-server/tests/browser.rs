//! The monitor page in a real headless Chromium, driven over WebDriver
//! (chromedriver, started by each test on a free loopback port), against the
//! real server and real builds (see `support`): a live build's coloured
//! lines appear while it runs, hostile commit messages stay text, a page
//! left open over a server restart shows the disconnected banner and then
//! recovers without a reload, the line printed after a million-line flood
//! is on the page while the build still runs, long lines sent in pieces are
//! put back whole, an idle server's page says nothing is building (and, on a
//! server that tracks nothing, how to start tracking), and the page keeps
//! the sequence of a build's lines (gaps said, repeats skipped, colours
//! carried over lines it never draws).
//!
//! Debian's `chromium` and `chromium-driver` must be installed
//! (`scripts/test.sh` installs them); without them these tests fail, they
//! never skip. A screenshot of the page during a build is written to
//! `target/monitor-screenshot.png`.

use zos_build_testkit::browser::{free_port, until, Driver};
use zos_build_testkit::server as support;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::{Harness, DOCKER};
use zos_build_core::BuildStatus;

/// The longest any single condition is waited for.
const WAIT: Duration = Duration::from_secs(30);

/// Runs `script` in the page (with `args` as `arguments`) and returns what
/// it returned.
async fn js(client: &Client, script: &str, args: Vec<Value>) -> Value {
    client
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Loads `/monitor` and waits until the page is connected and shows the
/// history the server sent.
async fn open_monitor(h: &Harness, client: &Client) {
    client.goto(&h.url("/monitor")).await.unwrap();
    until(WAIT, "the page connects and shows the history", || async {
        let state = js(
            client,
            "return {banner: document.getElementById('disconnected').hidden,
                     connection: document.getElementById('connection').textContent,
                     history: document.querySelectorAll('#history details[data-build-id]').length};",
            vec![],
        )
        .await;
        if state["banner"] == true && state["connection"] == "live" && state["history"] != 0 {
            Ok(())
        } else {
            Err(state.to_string())
        }
    })
    .await;
}

/// The lines of a build's console on the page, and the texts of its green
/// spans; `None` while the page has no console for it.
async fn console(client: &Client, id: &str) -> Option<(Vec<String>, Vec<String>)> {
    let seen = js(
        client,
        "const box = document.querySelector('.console[data-build-id=\"' + CSS.escape(arguments[0]) + '\"]');
         if (!box) return null;
         const texts = (nodes) => Array.from(nodes, (n) => n.textContent);
         return {lines: texts(box.querySelectorAll(':scope > .line:not(.notice)')),
                 green: texts(box.querySelectorAll(':scope > .line > span.ansi-fg-2'))};",
        vec![json!(id)],
    )
    .await;
    if seen.is_null() {
        return None;
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    Some((strings(&seen["lines"]), strings(&seen["green"])))
}

/// Waits until build `id` is in the history section with `status`, and the
/// running section is empty.
async fn until_in_history(client: &Client, id: &str, status: &str) {
    let what = format!("the build in the history, {status}");
    until(WAIT, &what, || async {
        let state = js(
            client,
            "const entry = document.querySelector('#history details[data-build-id=\"' + CSS.escape(arguments[0]) + '\"]');
             return [entry ? entry.className : null,
                     document.querySelectorAll('#running article[data-build-id]').length];",
            vec![json!(id)],
        )
        .await;
        let class = format!("status-{status}");
        if state[0].as_str().is_some_and(|c| c.contains(&class)) && state[1] == 0 {
            Ok(())
        } else {
            Err(state.to_string())
        }
    })
    .await;
}

/// Fails unless build `id` is still building.
async fn assert_building(h: &Harness, id: &str, when: &str) {
    let record = h.record(id).await;
    assert_eq!(
        record.status,
        BuildStatus::Building,
        "the build must still run {when}: {record:?}"
    );
}

/// Prints `n` numbered lines, green then `; plain` in the default colour,
/// one every 0.3 s, then leaves the artifact.
fn coloured_lines_script(n: u32) -> String {
    format!(
        "#!/bin/sh\nset -e\necho 'widget: starting'\n\
         for i in $(seq 1 {n}); do printf '\\033[32mgreen %s\\033[0m; plain\\n' $i; sleep 0.3; done\n\
         mkdir -p /target\necho art > /target/widget.tar.gz\n"
    )
}

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("monitor-screenshot.png")
}

#[tokio::test]
async fn a_running_build_shows_its_coloured_lines_live() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    let mut h = Harness::start("").await;

    // A finished build first, so that the history (and the screenshot)
    // shows one.
    let first = h.commit("#!/bin/sh\nset -e\necho 'widget: compiled'\nmkdir -p /target\necho art > /target/widget.tar.gz\n");
    let mut ids = h
        .push_with_commits(
            "master",
            &first,
            json!([{"id": first, "message": "Add the widget's build script",
                    "author": {"name": "Ada Lovelace", "username": "ada"}}]),
        )
        .await;
    h.finished(&ids[0]).await;

    open_monitor(&h, &client).await;
    let commit = h.commit(&coloured_lines_script(40));
    let pushed = h
        .push_with_commits(
            "master",
            &commit,
            json!([{"id": commit, "message": "Print numbered lines in colour",
                    "author": {"name": "Grace Hopper", "username": "grace"}}]),
        )
        .await;
    let id = pushed[0].clone();
    ids.extend(pushed);

    // Lines reach the console while the build runs...
    let (lines, _) = until(WAIT, "three lines in the build's console", || async {
        match console(&client, &id).await {
            Some((lines, green)) if green.len() >= 3 => Ok((lines, green)),
            other => Err(format!("{other:?}, build {:?}", h.record(&id).await.status)),
        }
    })
    .await;
    assert_building(&h, &id, "when its first lines are on the page").await;
    // ... and keep coming: the page follows the websocket, not a snapshot.
    let shown = lines.len();
    let (lines, green) = until(WAIT, "more lines in the build's console", || async {
        match console(&client, &id).await {
            Some((lines, green)) if lines.len() >= shown + 2 => Ok((lines, green)),
            other => Err(format!("{other:?}, build {:?}", h.record(&id).await.status)),
        }
    })
    .await;
    assert_building(&h, &id, "while lines keep arriving").await;

    // Every numbered line is whole, `;` included, and in order; its number
    // is in a green span, the rest in the default colour.
    let numbered: Vec<&String> = lines.iter().filter(|l| l.starts_with("green ")).collect();
    assert!(numbered.len() >= 3, "{lines:?}");
    for (i, line) in numbered.iter().enumerate() {
        assert_eq!(**line, format!("green {}; plain", i + 1), "{lines:?}");
    }
    for (i, span) in green.iter().enumerate() {
        assert_eq!(*span, format!("green {}", i + 1), "{green:?}");
    }
    let escapes = js(
        &client,
        "return document.getElementById('running').textContent.includes('\\u001b');",
        vec![],
    )
    .await;
    assert_eq!(escapes, false, "no escape character reaches the page");
    let colour = client
        .find(Locator::Css(&format!(
            ".console[data-build-id=\"{id}\"] span.ansi-fg-2"
        )))
        .await
        .unwrap()
        .css_value("color")
        .await
        .unwrap();
    let plain = js(
        &client,
        "const line = document.querySelector('.console[data-build-id=\"' + CSS.escape(arguments[0]) + '\"] > .line:last-child');
         return getComputedStyle(line).color;",
        vec![json!(id)],
    )
    .await;
    assert_ne!(
        json!(colour),
        plain,
        "green text has a colour of its own: {colour}"
    );

    // The build's header on the page.
    let article = client
        .find(Locator::Css(&format!(
            "#running article[data-build-id=\"{id}\"]"
        )))
        .await
        .unwrap();
    let head = article.text().await.unwrap();
    assert!(head.contains("acme/widget/master"), "{head}");
    assert!(head.contains("building"), "{head}");
    assert!(head.contains("Print numbered lines in colour"), "{head}");

    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    assert_building(&h, &id, "when the screenshot is taken").await;

    // Once finished, it moves to the history.
    let record = h.finished(&id).await;
    assert_eq!(record.status, BuildStatus::Success, "{record:?}");
    until_in_history(&client, &id, "success").await;

    driver.stop(client).await;
    h.stop_and_check_clean(&ids).await;
}

const HOSTILE_MESSAGE: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_AUTHOR: &str = "<script>alert(2)</script>";

/// Checks that the page holds no element made from the hostile texts, and
/// that nothing ran: no `alert` call recorded, no dialog open, no script
/// blocked by the Content-Security-Policy.
async fn assert_nothing_injected(client: &Client, recorder: bool) {
    let found = js(
        client,
        "return {images: document.querySelectorAll('img').length,
                 inSections: document.querySelectorAll('#running img, #history img, #running script, #history script').length,
                 scripts: Array.from(document.scripts, (s) => s.getAttribute('src')),
                 alerts: window.__alerts === undefined ? null : window.__alerts,
                 violations: window.__violations === undefined ? null : window.__violations};",
        vec![],
    )
    .await;
    assert_eq!(found["images"], 0, "{found}");
    assert_eq!(found["inSections"], 0, "{found}");
    assert_eq!(found["scripts"], json!(["/monitor/monitor.js"]), "{found}");
    if recorder {
        assert_eq!(found["alerts"], json!([]), "{found}");
        assert_eq!(found["violations"], json!([]), "{found}");
    }
    match client.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        Ok(text) => panic!("a dialog is open: {text:?}"),
        Err(e) => panic!("cannot ask for a dialog: {e}"),
    }
}

/// The text of the first element matching `css`, as rendered.
async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hostile_commit_message_is_shown_as_text_and_runs_nothing() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    let mut h = Harness::start("").await;
    open_monitor(&h, &client).await;
    // Before any hostile data arrives: record alert calls (without opening
    // a dialog) and what the Content-Security-Policy blocks.
    js(
        &client,
        "window.__alerts = [];
         window.alert = (message) => { window.__alerts.push(String(message)); };
         window.__violations = [];
         document.addEventListener('securitypolicyviolation',
           (e) => { window.__violations.push(e.violatedDirective + ' ' + e.blockedURI); });
         return null;",
        vec![],
    )
    .await;

    let commit = h.commit("#!/bin/sh\nset -e\necho 'widget: working'\nsleep 3\nmkdir -p /target\necho art > /target/widget.tar.gz\n");
    let ids = h
        .push_with_commits(
            "master",
            &commit,
            json!([{"id": commit, "message": HOSTILE_MESSAGE,
                    "author": {"name": HOSTILE_AUTHOR, "username": HOSTILE_AUTHOR}}]),
        )
        .await;
    let id = ids[0].clone();

    // While it runs: its commit in the running section.
    let article = format!("#running article[data-build-id=\"{id}\"]");
    until(WAIT, "the build in the running section", || async {
        match client
            .find(Locator::Css(&format!("{article} .commit .message")))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert_eq!(
        text_of(&client, &format!("{article} .commit .message")).await,
        HOSTILE_MESSAGE
    );
    assert_eq!(
        text_of(&client, &format!("{article} .commit .author")).await,
        HOSTILE_AUTHOR
    );
    assert_nothing_injected(&client, true).await;

    // Finished: in the history, summary and (opened) details.
    h.finished(&id).await;
    let entry = format!("#history details[data-build-id=\"{id}\"]");
    until(WAIT, "the build in the history", || async {
        match client
            .find(Locator::Css(&format!("{entry} > summary")))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let check_history = || async {
        assert_eq!(
            text_of(&client, &format!("{entry} .summary-message")).await,
            HOSTILE_MESSAGE
        );
        client
            .find(Locator::Css(&format!("{entry} > summary")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(
            text_of(&client, &format!("{entry} .commit .message")).await,
            HOSTILE_MESSAGE
        );
        assert_eq!(
            text_of(&client, &format!("{entry} .commit .author")).await,
            HOSTILE_AUTHOR
        );
    };
    check_history().await;
    assert_nothing_injected(&client, true).await;

    // A fresh load gets the same texts in its first history frame; with
    // no recorder now, a dialog would stay open and be seen.
    client.refresh().await.unwrap();
    open_monitor(&h, &client).await;
    check_history().await;
    assert_nothing_injected(&client, false).await;

    driver.stop(client).await;
    h.stop_and_check_clean(&ids).await;
}

/// Whether the disconnected banner is shown: `hidden` removed and drawn.
async fn banner_shown(client: &Client) -> Result<bool, String> {
    let banner = client
        .find(Locator::Id("disconnected"))
        .await
        .map_err(|e| e.to_string())?;
    let hidden = banner.attr("hidden").await.map_err(|e| e.to_string())?;
    let displayed = banner.is_displayed().await.map_err(|e| e.to_string())?;
    match (hidden.is_none(), displayed) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        other => Err(format!(
            "inconsistent banner (no hidden attribute, drawn): {other:?}"
        )),
    }
}

/// The server binary, in a process of its own: stopping it closes every
/// connection, as a real restart does. Killed if dropped while running.
struct ServerProcess(Child);

impl ServerProcess {
    /// SIGTERM (what a service manager sends), then waits for it to exit.
    async fn stop(&mut self, h: &Harness) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.0.id());
        let start = Instant::now();
        let exit = loop {
            if let Some(exit) = self.0.try_wait().unwrap() {
                break exit;
            }
            assert!(
                start.elapsed() < WAIT,
                "the server did not exit after SIGTERM:\n{}",
                h.server_output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(exit.success(), "{exit:?}\n{}", h.server_output());
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The JavaScript that reads a page-level marker: it survives only as long
/// as the document does.
const READ_MARKER: &str =
    "return window.__sameDocument === undefined ? null : window.__sameDocument;";

#[tokio::test]
async fn the_page_shows_a_banner_while_the_server_is_down_and_recovers() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    let mut h = Harness::prepare("").await;
    let binary = env!("CARGO_BIN_EXE_zos-build-server");
    let port = free_port();
    let mut server = ServerProcess(h.spawn_binary_on(binary, port).await);
    let commit = h.commit("#!/bin/sh\nset -e\necho 'widget: before'\nmkdir -p /target\necho art > /target/widget.tar.gz\n");
    let mut ids = h.push(&commit).await;
    let before = ids[0].clone();
    h.finished(&before).await;

    open_monitor(&h, &client).await;
    let entry = format!("#history details[data-build-id=\"{before}\"]");
    client.find(Locator::Css(&entry)).await.unwrap();
    assert_eq!(banner_shown(&client).await, Ok(false));
    js(
        &client,
        "window.__sameDocument = 'not reloaded'; return null;",
        vec![],
    )
    .await;

    server.stop(&h).await;
    until(
        Duration::from_secs(10),
        "the disconnected banner while the server is down",
        || async {
            match banner_shown(&client).await {
                Ok(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(text_of(&client, "#connection").await, "offline");
    // Its retries fail while the server is away: the banner stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(banner_shown(&client).await, Ok(true), "still down");

    let mut server = ServerProcess(h.spawn_binary_on(binary, port).await);
    until(
        WAIT,
        "the banner hidden again once the server is back",
        || async {
            match banner_shown(&client).await {
                Ok(false) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(text_of(&client, "#connection").await, "live");
    assert_eq!(
        js(&client, READ_MARKER, vec![]).await,
        "not reloaded",
        "the page recovered without a reload"
    );
    client
        .find(Locator::Css(&entry))
        .await
        .expect("the history is shown again");

    // And it is live again: a build pushed now reaches the page.
    let commit = h.commit("#!/bin/sh\nset -e\necho 'widget: after'\nmkdir -p /target\necho art > /target/widget.tar.gz\n");
    let after = h.push(&commit).await;
    ids.extend(after.iter().cloned());
    let after = after[0].clone();
    h.finished(&after).await;
    until(
        WAIT,
        "the build pushed after the restart in the history",
        || async {
            let entries = js(
                &client,
                "return Array.from(document.querySelectorAll('#history details[data-build-id]'),
                               (e) => e.dataset.buildId);",
                vec![],
            )
            .await;
            let entries: Vec<&str> = entries
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            if entries.contains(&after.as_str()) && entries.contains(&before.as_str()) {
                Ok(())
            } else {
                Err(format!("{entries:?}"))
            }
        },
    )
    .await;
    assert_eq!(js(&client, READ_MARKER, vec![]).await, "not reloaded");

    driver.stop(client).await;
    server.stop(&h).await;
    h.stop_and_check_clean(&ids).await;
}

/// Build `id`'s console on the page (null while there is none): its lines
/// (as `console` reads them), its notices, its number of rows and the text
/// before its "full log" link (the count of earlier lines).
async fn console_state(client: &Client, id: &str) -> Value {
    js(
        client,
        "const box = document.querySelector('.console[data-build-id=\"' + CSS.escape(arguments[0]) + '\"]');
         if (!box) return null;
         const article = box.closest('article');
         return {lines: Array.from(box.querySelectorAll(':scope > .line:not(.notice)'), (n) => n.textContent),
                 notices: Array.from(box.querySelectorAll(':scope > .notice'), (n) => n.textContent),
                 rows: box.childElementCount,
                 earlier: article.querySelector('.earlier').textContent};",
        vec![json!(id)],
    )
    .await
}

/// The page's JS heap in use, in bytes (Chromium's `performance.memory`).
async fn js_heap(client: &Client) -> u64 {
    let used = js(
        client,
        "return performance.memory ? performance.memory.usedJSHeapSize : null;",
        vec![],
    )
    .await;
    used.as_u64()
        .unwrap_or_else(|| panic!("no performance.memory in this Chromium: {used}"))
}

/// The number in a text such as "… 999,502 earlier lines: ".
fn number_in(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("no number in {text:?}: {e}"))
}

/// The lines of the console (see `console`) as text, for messages.
fn tail_of(lines: &[Value]) -> String {
    let strings: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
    format!("{} lines, last {:?}", strings.len(), strings.last())
}

/// Waits for `marker`, printed after the flood of build `id`, as the last
/// line on the page; then checks that the console holds its last
/// CONSOLE_LINES lines: the end of the flood, in order, with nothing missing
/// or repeated, no notice of a gap, the earlier lines counted; and that the
/// page's JS heap is under 100 MB.
async fn assert_flood_tail(h: &Harness, client: &Client, id: &str, marker: &str) {
    let seen = until(WAIT, "the marker after the flood on the page", || async {
        let state = console_state(client, id).await;
        let lines = state["lines"].as_array().cloned().unwrap_or_default();
        if lines.last().and_then(Value::as_str) == Some(marker) {
            Ok(state)
        } else {
            Err(format!(
                "{}; notices {}; build {:?}",
                tail_of(&lines),
                state["notices"],
                h.record(id).await.status
            ))
        }
    })
    .await;
    let lines: Vec<&str> = seen["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), CONSOLE_LINES, "{seen}");
    assert_eq!(seen["rows"], json!(CONSOLE_LINES), "{seen}");
    let expected: Vec<String> = (FLOOD_LINES + 2 - CONSOLE_LINES as u64..=FLOOD_LINES)
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        lines[..CONSOLE_LINES - 1],
        expected[..],
        "the flood's last lines"
    );
    assert_eq!(seen["notices"], json!([]), "no gap, no lag: {seen}");
    let earlier = number_in(seen["earlier"].as_str().unwrap());
    assert!(
        earlier >= FLOOD_LINES + 1 - CONSOLE_LINES as u64,
        "the earlier lines are counted: {seen}"
    );
    let heap = js_heap(client).await;
    assert!(heap < 100 << 20, "the page's JS heap: {heap} bytes");
}

/// Lines printed by the flood, then the marker.
const FLOOD_LINES: u64 = 1_000_000;
/// Lines a console keeps (the page's CONSOLE_LINES).
const CONSOLE_LINES: usize = 500;

#[tokio::test]
async fn the_last_line_after_a_million_line_flood_reaches_the_page_while_the_build_runs() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    let mut h = Harness::start("").await;
    let _containers = h.build_containers();
    open_monitor(&h, &client).await;
    // A second tab on the page, left in the background through the flood:
    // hidden, it gets no animation frames, so nothing is drawn there.
    let front = client.window().await.unwrap();
    let back = client.new_window(true).await.unwrap().handle;
    client.switch_to_window(back.clone()).await.unwrap();
    open_monitor(&h, &client).await;
    js(
        &client,
        "window.__visibility = [document.visibilityState];
         document.addEventListener('visibilitychange',
           () => window.__visibility.push(document.visibilityState));
         return null;",
        vec![],
    )
    .await;
    client.switch_to_window(front.clone()).await.unwrap();

    // The marker after the flood, then a wait that only the test ends.
    let marker = format!("FLOOD-MARKER-{}", std::process::id());
    let commit = h.commit(&format!(
        "#!/bin/sh\nseq 1 {FLOOD_LINES}\necho {marker}\nsleep 120\n"
    ));
    let ids = h.push(&commit).await;
    let id = ids[0].clone();
    assert_flood_tail(&h, &client, &id, &marker).await;
    assert_building(&h, &id, "when its marker is on the page").await;

    // The background tab, brought to the front: hidden through the flood,
    // it kept a console's worth of lines, and shows the same.
    client.switch_to_window(back).await.unwrap();
    assert_flood_tail(&h, &client, &id, &marker).await;
    assert_eq!(
        js(&client, "return window.__visibility;", vec![]).await,
        json!(["visible", "hidden", "visible"]),
        "the second tab was hidden through the flood"
    );
    assert_building(&h, &id, "when its marker is on the second tab").await;
    client.switch_to_window(front).await.unwrap();

    // Cancelled, it moves to the history.
    let cancelled = h
        .server()
        .state
        .scheduler
        .as_ref()
        .expect("the harness runs builds")
        .cancel(&id, "the test saw its marker");
    assert!(cancelled, "the build could be cancelled");
    let record = h.finished(&id).await;
    assert_eq!(record.status, BuildStatus::Cancelled, "{record:?}");
    until_in_history(&client, &id, "cancelled").await;

    driver.stop(client).await;
    h.stop_and_check_clean(&ids).await;
}

/// Loads `/monitor` and waits until the page is connected, its running
/// section says what it says with no build and (with `server_event`) its
/// header says what the server tracks: returns those two texts.
async fn idle_page(h: &Harness, client: &Client, server_event: bool) -> (String, String) {
    client.goto(&h.url("/monitor")).await.unwrap();
    let state = until(WAIT, "the connected page with no build", || async {
        let state = js(
            client,
            "const empty = document.querySelector('#running-list > .empty');
             const tracking = document.getElementById('tracking');
             return {connection: document.getElementById('connection').textContent,
                     builds: document.querySelectorAll('#running article[data-build-id]').length,
                     empty: empty ? empty.textContent : null,
                     tracking: tracking && !tracking.hidden ? tracking.textContent : null};",
            vec![],
        )
        .await;
        if state["connection"] == "live"
            && state["builds"] == 0
            && state["empty"].as_str().is_some()
            && (!server_event || state["tracking"].as_str().is_some())
        {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    })
    .await;
    (
        state["empty"].as_str().unwrap().to_string(),
        state["tracking"].as_str().unwrap_or_default().to_string(),
    )
}

/// A running harness that tracks nothing: its configuration repository
/// holds no branch file (`keep_repository`), or its configuration has no
/// `configuration-repository` key at all.
async fn untracked_harness(keep_repository: bool) -> Harness {
    let mut h = Harness::prepare("").await;
    if keep_repository {
        let catalog = h.dir.path().join("config-repo").join(support::REPOSITORY);
        for entry in std::fs::read_dir(&catalog).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    } else {
        h.yaml = h
            .yaml
            .lines()
            .filter(|line| !line.starts_with("configuration-repository:"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(!h.yaml.contains("configuration-repository"), "{}", h.yaml);
        h.config = zos_build_server::Config::from_yaml(&h.yaml, Path::new("test.yaml")).unwrap();
    }
    h.restart(true).await;
    h
}

#[tokio::test]
async fn an_idle_page_says_nothing_is_building_and_how_to_start_tracking() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;

    // A server tracking acme/widget (master and dev), with nothing to do.
    let h = Harness::start("").await;
    let (empty, tracking) = idle_page(&h, &client, true).await;
    assert!(empty.contains("Nothing is building"), "{empty}");
    assert!(
        !empty.contains("Waiting"),
        "connected, it waits for nothing: {empty}"
    );
    assert!(
        !empty.contains("configuration-repository"),
        "a tracking server needs no set-up: {empty}"
    );
    assert!(
        tracking.starts_with("tracking 2 branches of 1 repository from "),
        "{tracking}"
    );
    h.stop_and_check_clean(&[]).await;

    // No configuration repository: how to set one.
    let h = untracked_harness(false).await;
    let (empty, tracking) = idle_page(&h, &client, true).await;
    assert!(empty.contains("Nothing is building"), "{empty}");
    assert!(empty.contains("tracks no repository"), "{empty}");
    assert!(
        empty.contains("set the configuration-repository key of the server's configuration"),
        "{empty}"
    );
    assert!(empty.contains("docs/server-configuration.md"), "{empty}");
    assert!(
        tracking.starts_with("no configuration repository"),
        "{tracking}"
    );
    h.stop_and_check_clean(&[]).await;

    // A configuration repository naming no branch: how to start tracking.
    let h = untracked_harness(true).await;
    let (empty, tracking) = idle_page(&h, &client, true).await;
    assert!(empty.contains("Nothing is building"), "{empty}");
    assert!(empty.contains("tracks no repository"), "{empty}");
    assert!(empty.contains("add a branch file"), "{empty}");
    assert!(empty.contains("configuration-repository"), "{empty}");
    assert!(
        tracking.starts_with("tracking 0 branches of 0 repositories from "),
        "{tracking}"
    );
    h.stop_and_check_clean(&[]).await;

    driver.stop(client).await;
}

/// Frames of a build that does not exist, given to the page's own frame
/// handler (`onFrame`, as if they came from the websocket): one batch of
/// 5,000 lines whose first sets green, a reset, a gap of eight lines, a
/// repeat, a line in two pieces, a piece without its beginning, a last line.
const SYNTHETIC_FRAMES: &str = r#"
const id = 'synthetic-build';
const added = [];
new MutationObserver((records) => {
  for (const r of records) for (const n of r.addedNodes) if (n.classList && n.classList.contains('line')) added.push(n);
}).observe(document.getElementById('running-list'), {childList: true, subtree: true});
window.__added = added;
const send = (event, payload) => onFrame(JSON.stringify({event, payload}));
send('status', {[id]: {id, status: 'building', name: 'acme/synthetic/master',
                       started: Date.now() / 1000, monitor: ''}});
let flood = '\u001b[32mline 0\n';
for (let i = 1; i < 5000; i++) flood += 'line ' + i + '\n';
send('update', {id, seq: 0, count: 5000, line: flood});
send('update', {id, seq: 5000, count: 2, line: '\u001b[0mline 5000\nline 5001\n'});
send('update', {id, seq: 5010, count: 1, line: 'line 5010\n'});
send('update', {id, seq: 5008, count: 4, line: 'line 5008\nline 5009\nline 5010\nline 5011\n'});
send('update', {id, seq: 5012, count: 0, piece: 0, line: 'a'.repeat(40000)});
send('update', {id, seq: 5012, count: 1, piece: 1, line: 'b'.repeat(30000) + '\n'});
send('update', {id, seq: 5013, count: 1, piece: 1, line: 'a piece without its beginning\n'});
send('update', {id, seq: 5014, count: 1, line: 'last\n'});
return null;
"#;

#[tokio::test]
async fn the_page_draws_only_the_lines_it_shows_and_says_where_lines_are_missing() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    // An idle server: nothing it sends touches the made-up build.
    let h = Harness::start("").await;
    idle_page(&h, &client, false).await;
    js(&client, SYNTHETIC_FRAMES, vec![]).await;
    let id = "synthetic-build";
    let state = until(WAIT, "the made-up build's lines drawn", || async {
        let state = console_state(&client, id).await;
        let lines = state["lines"].as_array().cloned().unwrap_or_default();
        if lines.last().and_then(Value::as_str) == Some("last") {
            Ok(state)
        } else {
            Err(state.to_string())
        }
    })
    .await;
    let lines: Vec<&str> = state["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // The last CONSOLE_LINES rows: the batch's last 493 lines, the two after
    // the reset, the notice, the line after the gap, the one new line of the
    // repeat, the line put together, the last line.
    let mut expected: Vec<String> = (4507..5002).map(|i| format!("line {i}")).collect();
    expected.extend(["line 5010".to_string(), "line 5011".to_string()]);
    expected.push(format!("{}{}", "a".repeat(40000), "b".repeat(30000)));
    expected.push("last".to_string());
    let short: Vec<String> = lines
        .iter()
        .map(|l| format!("{l:.20}({})", l.len()))
        .collect();
    assert_eq!(
        state["rows"],
        json!(CONSOLE_LINES),
        "{:?} {}",
        &short[short.len().saturating_sub(20)..],
        state["notices"]
    );
    assert_eq!(
        lines.len(),
        expected.len(),
        "{:?} {}",
        &short[short.len().saturating_sub(20)..],
        state["notices"]
    );
    for (shown, wanted) in lines.iter().zip(&expected) {
        assert!(shown == wanted, "{:.60} instead of {:.60}", shown, wanted);
    }
    assert_eq!(state["earlier"], "… 4,507 earlier lines: ", "{state:?}");
    let notices = state["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0]
            .as_str()
            .unwrap()
            .contains("8 lines missing here"),
        "{notices:?}"
    );

    // The colour set by the first line (never drawn) holds until the reset.
    let colours = js(
        &client,
        "const box = document.querySelector('.console[data-build-id=\"synthetic-build\"]');
         return Array.from(box.querySelectorAll(':scope > .line:not(.notice)'),
                           (n) => n.querySelector('span.ansi-fg-2') !== null);",
        vec![],
    )
    .await;
    let colours: Vec<bool> = colours
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_bool().unwrap())
        .collect();
    assert!(colours[..493].iter().all(|&green| green), "{colours:?}");
    assert!(!colours[493..].iter().any(|&green| green), "{colours:?}");

    // Only what is shown was ever made: the page drew the 5,000 lines'
    // tail, not each of them.
    let added = js(&client, "return window.__added.length;", vec![]).await;
    assert!(
        added.as_u64().unwrap() <= CONSOLE_LINES as u64,
        "{added} lines made for {CONSOLE_LINES} rows"
    );

    driver.stop(client).await;
    h.stop_and_check_clean(&[]).await;
}

#[tokio::test]
async fn long_lines_sent_in_pieces_are_shown_whole() {
    let _docker = DOCKER.lock().await;
    let driver = Driver::start().await;
    let client = driver.session(&[]).await;
    let mut h = Harness::start("").await;
    let _containers = h.build_containers();
    open_monitor(&h, &client).await;
    // 70,000 and 300,000 characters: over one frame of the server (64 KiB),
    // each is sent in pieces; then a short line.
    let commit = h.commit(
        "#!/bin/sh\nprintf '%070000d\\n' 0\nprintf '%0300000d\\n' 0 | tr 0 y\n\
         echo after-the-long-lines\nsleep 120\n",
    );
    let ids = h.push(&commit).await;
    let id = ids[0].clone();
    let state = until(WAIT, "the long lines on the page", || async {
        let state = console_state(&client, &id).await;
        let lines = state["lines"].as_array().cloned().unwrap_or_default();
        if lines.last().and_then(Value::as_str) == Some("after-the-long-lines") {
            Ok(state)
        } else {
            Err(format!(
                "{}; build {:?}",
                tail_of(&lines),
                h.record(&id).await.status
            ))
        }
    })
    .await;
    assert_building(&h, &id, "when its lines are on the page").await;
    let lines: Vec<&str> = state["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let long: Vec<&&str> = lines.iter().filter(|l| l.len() > 1000).collect();
    let short: Vec<String> = lines
        .iter()
        .map(|l| format!("{l:.20}({})", l.len()))
        .collect();
    assert_eq!(long.len(), 2, "two long lines: {short:?}");
    assert!(*long[0] == "0".repeat(70_000), "the first whole: {short:?}");
    assert!(
        *long[1] == "y".repeat(300_000),
        "the second whole: {short:?}"
    );
    assert_eq!(state["notices"], json!([]));
    let cancelled = h
        .server()
        .state
        .scheduler
        .as_ref()
        .expect("the harness runs builds")
        .cancel(&id, "the test saw its lines");
    assert!(cancelled);
    h.finished(&id).await;
    driver.stop(client).await;
    h.stop_and_check_clean(&ids).await;
}
