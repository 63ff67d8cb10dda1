//! The monitor page under a flood: how long a headless Chromium on
//! `/monitor` takes to show the line a build prints after a million lines,
//! against `docker run` of the same million lines, in the same run (see
//! docs/benchmarks.md, "Monitor page").
//!
//! cargo bench -p zos-build-server --bench page
//!
//! The server runs in-process on a temporary data directory
//! (`zos_build_testkit::server::Harness`, as in `tests/browser.rs`), with a
//! headless Chromium driven by chromedriver over WebDriver, on loopback.
//! Two tabs show `/monitor`: the one in front is timed; the other stays in
//! the background the whole run (a hidden tab gets no animation frames), as
//! a page left open for hours would.
//!
//! Each round pushes a commit whose build script prints `seq 1 1000000`,
//! then a marker line, then sleeps; it is timed from the signed push to the
//! page showing the marker (a MutationObserver in the page notes the wall
//! clock when the console's last row becomes the marker, so polling adds
//! nothing), then the build is cancelled. In the same round
//! `docker run --rm <image> seq 1 1000000 > /dev/null` is timed; the two
//! alternate which goes first. One warm-up round, then [`ROUNDS`] rounds;
//! medians of each, and their ratio (the goal: at most 1.0). The page's own
//! part is printed too: the script time of its frame handler and its draws
//! until the marker showed, and the time from the frame holding the marker
//! arriving to the marker shown. After the rounds, the JS heap of both tabs
//! (Chromium's precise `performance.memory.usedJSHeapSize`, before and after
//! a full garbage collection), which must be under 100 MB.
//!
//! Every wait has a deadline. chromedriver and Chromium run in a process
//! group of their own and are killed when the run ends, however it ends
//! (a panic, Ctrl-C); the builds' containers carry this server's instance
//! label and are removed too.

use zos_build_testkit::browser::Driver;
use zos_build_testkit::measure::{self, load_average};
use zos_build_testkit::server as support;

use fantoccini::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{common, Harness};

/// Lines of the flood.
const FLOOD_LINES: u64 = 1_000_000;
/// Measured rounds, after one warm-up round.
const ROUNDS: usize = 7;
/// The longest any one thing is waited for.
const LIMIT: Duration = Duration::from_secs(120);
/// The heap the page must stay under.
const HEAP_LIMIT: u64 = 100 << 20;

async fn js(client: &Client, script: &str) -> Value {
    client
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Waits (at most [`LIMIT`]) until `script` returns something but null.
async fn until_value(client: &Client, what: &str, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let value = js(client, script).await;
        if !value.is_null() {
            return value;
        }
        assert!(start.elapsed() < LIMIT, "{what}: not after {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wraps the page's frame handler (`onFrame`) and its draw (`renderFrame`,
/// called at each animation frame while lines wait) to add up the time they
/// take, in `window.__stats`, and to note when the frame holding
/// `window.__marker` arrives (`window.__frameAt`, epoch milliseconds).
const MEASURE_SCRIPT: &str = "
window.__stats = {frames: 0, frameMs: 0, draws: 0, drawMs: 0};
window.__marker = null;
window.__frameAt = null;
const handle = onFrame;
onFrame = (data) => {
  const t = performance.now();
  if (window.__marker !== null && window.__frameAt === null && data.indexOf(window.__marker) !== -1) {
    window.__frameAt = performance.timeOrigin + t;
  }
  handle(data);
  window.__stats.frames++;
  window.__stats.frameMs += performance.now() - t;
};
const draw = renderFrame;
renderFrame = (time) => {
  const t = performance.now();
  draw(time);
  window.__stats.draws++;
  window.__stats.drawMs += performance.now() - t;
};
return null;";

/// Notes (in `window.__markerAt`, epoch milliseconds) when a console's last
/// row first reads `arguments`' marker (and in `window.__statsAt` the
/// page's `__stats` then), and starts `window.__stats` over.
const WATCH_MARKER: &str = "
const marker = arguments[0];
window.__markerAt = null;
window.__marker = marker;
window.__frameAt = null;
window.__stats = {frames: 0, frameMs: 0, draws: 0, drawMs: 0};
if (window.__watch) window.__watch.disconnect();
window.__watch = new MutationObserver(() => {
  for (const box of document.querySelectorAll('#running-list .console')) {
    const last = box.lastElementChild;
    if (last && last.textContent === marker) {
      window.__markerAt = performance.timeOrigin + performance.now();
      window.__statsAt = Object.assign({frameAt: window.__frameAt}, window.__stats);
      window.__watch.disconnect();
      return;
    }
  }
});
window.__watch.observe(document.getElementById('running-list'), {childList: true, subtree: true});
return null;";

/// Records the visibility states of a tab from now on, and counts the
/// frames the page's websocket handler (`onFrame`) is given.
const WATCH_BACKGROUND: &str = "
window.__visibility = [document.visibilityState];
document.addEventListener('visibilitychange', () => window.__visibility.push(document.visibilityState));
window.__frames = 0;
window.__chars = 0;
const handle = onFrame;
onFrame = (data) => { window.__frames++; window.__chars += data.length; handle(data); };
return null;";

const HEAP: &str = "return performance.memory.usedJSHeapSize;";
const HEAP_AFTER_GC: &str =
    "if (typeof gc === 'function') gc(); return performance.memory.usedJSHeapSize;";

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `docker run --rm <image> seq 1 <FLOOD_LINES> > /dev/null`.
async fn docker_run() -> Duration {
    let lines = FLOOD_LINES.to_string();
    measure::docker_run(&[common::IMAGE, "seq", "1", &lines], LIMIT).await
}

/// One flood on the page: from the push to the marker shown in the front
/// tab; the build is cancelled then, and gone from the page before this
/// returns. Also returns what the page's script did until the marker
/// showed.
async fn page_round(h: &mut Harness, client: &Client, round: usize) -> (Duration, String, Value) {
    let marker = format!("PAGE-BENCH-MARKER-{}-{round}", std::process::id());
    let commit = h.commit(&format!(
        "#!/bin/sh\nseq 1 {FLOOD_LINES}\necho {marker}\nsleep 600\n"
    ));
    client
        .execute(WATCH_MARKER, vec![json!(marker)])
        .await
        .expect("the marker's observer");
    let pushed = epoch_ms();
    let ids = h.push(&commit).await;
    let id = ids[0].clone();
    let shown = until_value(
        client,
        "the marker on the page",
        "return window.__markerAt;",
    )
    .await;
    let elapsed = shown.as_f64().expect("a time") - pushed;
    let mut stats = js(client, "return window.__statsAt;").await;
    // From the frame holding the marker arriving to the marker shown: the
    // page's own part of the time.
    stats["latencyMs"] =
        json!(shown.as_f64().unwrap_or(f64::NAN) - stats["frameAt"].as_f64().unwrap_or(f64::NAN));
    let scheduler = h.server().state.scheduler.as_ref().expect("builds run");
    assert!(
        scheduler.cancel(&id, "the benchmark saw its marker"),
        "build {id} could be cancelled"
    );
    h.finished(&id).await;
    until_value(
        client,
        "the cancelled build gone from the running section",
        "return document.querySelector('#running-list article') ? null : true;",
    )
    .await;
    (
        Duration::from_secs_f64(elapsed.max(0.0) / 1000.0),
        id,
        stats,
    )
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn mib(bytes: &Value) -> String {
    format!("{:.1} MiB", bytes.as_f64().unwrap_or(f64::NAN) / 1048576.0)
}

async fn run(h: &mut Harness, client: &Client) -> Vec<String> {
    client.goto(&h.url("/monitor")).await.expect("/monitor");
    let front = client.window().await.expect("the front tab");
    let back = client.new_window(true).await.expect("a second tab").handle;
    client.switch_to_window(back.clone()).await.expect("to it");
    client.goto(&h.url("/monitor")).await.expect("/monitor");
    js(client, WATCH_BACKGROUND).await;
    client
        .switch_to_window(front)
        .await
        .expect("back to the front tab");
    js(client, MEASURE_SCRIPT).await;
    until_value(
        client,
        "the front page connected",
        "return document.getElementById('connection').textContent === 'live' ? true : null;",
    )
    .await;

    let (mut ours, mut reference, mut ids) = (vec![], vec![], vec![]);
    let (mut script, mut latency) = (vec![], vec![]);
    for round in 0..=ROUNDS {
        let (page, id, stats, docker) = if round % 2 == 0 {
            let docker = docker_run().await;
            let (page, id, stats) = page_round(h, client, round).await;
            (page, id, stats, docker)
        } else {
            let (page, id, stats) = page_round(h, client, round).await;
            (page, id, stats, docker_run().await)
        };
        ids.push(id);
        let what = if round == 0 { "warm-up" } else { "round" };
        println!(
            "{what} {round}: page shows the marker {:.3}s after the push; docker run {:.3}s; \
             ratio {:.2}; load average {}",
            page.as_secs_f64(),
            docker.as_secs_f64(),
            page.as_secs_f64() / docker.as_secs_f64(),
            load_average()
        );
        let ms = |key: &str| stats[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "  the page until then: {} websocket frames handled in {:.1} ms, \
             {} animation frame callbacks drawing in {:.1} ms; the marker shown {:.1} ms \
             after its frame arrived",
            stats["frames"],
            ms("frameMs"),
            stats["draws"],
            ms("drawMs"),
            ms("latencyMs")
        );
        if round > 0 {
            ours.push(page.as_secs_f64());
            reference.push(docker.as_secs_f64());
            script.push(ms("frameMs") + ms("drawMs"));
            latency.push(ms("latencyMs"));
        }
    }
    let (ours, reference) = (median(&ours), median(&reference));
    println!(
        "median of {ROUNDS} rounds: page {ours:.3}s, docker run {reference:.3}s, \
         ratio {:.2}x (goal: at most 1.0x)",
        ours / reference
    );
    println!(
        "the page's own part, medians: {:.1} ms of script (frames and draws) per flood, \
         the marker shown {:.1} ms after its frame arrived",
        median(&script),
        median(&latency)
    );

    let front_heap = js(client, HEAP).await;
    let front_gc = js(client, HEAP_AFTER_GC).await;
    // The background tab, brought to the front only now: its visibility
    // log shows it was hidden through the rounds.
    client
        .switch_to_window(back)
        .await
        .expect("to the background tab");
    let back_heap = js(client, HEAP).await;
    let back_gc = js(client, HEAP_AFTER_GC).await;
    let background = js(
        client,
        "return {visibility: window.__visibility, frames: window.__frames, chars: window.__chars};",
    )
    .await;
    println!(
        "JS heap after {} floods of {FLOOD_LINES} lines: front tab {} ({} after a full GC), \
         background tab {} ({} after a full GC)",
        ROUNDS + 1,
        mib(&front_heap),
        mib(&front_gc),
        mib(&back_heap),
        mib(&back_gc),
    );
    println!(
        "the background tab: visibility {} (hidden through the rounds), {} frames received, \
         {:.1} M characters",
        background["visibility"],
        background["frames"],
        background["chars"].as_f64().unwrap_or(0.0) / 1e6
    );
    assert_eq!(
        background["visibility"],
        json!(["visible", "hidden", "visible"]),
        "the second tab was in the background through the rounds"
    );
    for heap in [&front_heap, &back_heap] {
        assert!(
            heap.as_u64().is_some_and(|b| b < HEAP_LIMIT),
            "a page's heap over {HEAP_LIMIT} bytes: {heap}"
        );
    }
    ids
}

#[tokio::main]
async fn main() {
    println!(
        "machine: {} cores, load average {} at the start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let mut h = Harness::start("").await;
    let _containers = h.build_containers();
    let driver = Driver::start().await;
    // `gc()`, for the heap after a full collection.
    let client = driver.session(&["--js-flags=--expose-gc"]).await;
    println!(
        "workload: a build printing seq 1 {FLOOD_LINES}, a marker, then sleeping; \
         reference: docker run --rm {} seq 1 {FLOOD_LINES} > /dev/null",
        common::IMAGE
    );
    let ids = tokio::select! {
        ids = run(&mut h, &client) => Some(ids),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping everything this run started");
            None
        }
    };
    let _ = client.close().await;
    drop(driver);
    match ids {
        Some(ids) => h.stop_and_check_clean(&ids).await,
        None => {
            if let Some(server) = h.server.take() {
                server.stop().await;
            }
        }
    }
}
