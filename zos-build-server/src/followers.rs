//! The runtime that serves followers: websocket clients of `/buildio` and
//! `GET /api/builds/<id>/log?follow=1`.
//!
//! A build's log pipeline (the executor reading Docker, the sinks, the
//! history) runs on the server's main runtime. Followers are many, their
//! work grows with their number (a frame written to each, files read back
//! for the ones that fell behind), and none of it may hold a build up. So
//! they run on a runtime of their own, with one worker thread and its own
//! blocking pool for the files, at the lowest scheduling priority (nice 19):
//! however many followers there are, they take at most that thread's share
//! of the CPU, only what the build pipeline leaves, and the main runtime's
//! workers are never queued behind them. (Measured with the server on one
//! core: without the priority, 100 followers of a million-line build made
//! it take up to twice as long, because their thread took the core the log
//! pipeline reads Docker on; see docs/benchmarks.md, "Followers".) Sockets accepted by the main runtime are
//! polled from here; tokio drives their readiness from the runtime that
//! owns them.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// Worker threads of the followers' runtime.
pub const FOLLOWER_THREADS: usize = 1;
/// Blocking threads (file reads for catch-up) of the followers' runtime.
pub const FOLLOWER_BLOCKING_THREADS: usize = 4;

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(FOLLOWER_THREADS)
                .max_blocking_threads(FOLLOWER_BLOCKING_THREADS)
                .thread_name("zos-followers")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .map_err(|e| {
                    tracing::warn!(error = %e, "no runtime of their own for followers: they share the server's")
                })
                .ok()
        })
        .as_ref()
}

/// Gives the calling thread the lowest priority; a system that refuses
/// leaves it as it is.
fn lower_priority() {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "a followers' thread keeps its priority");
    }
}

/// Runs `future` (serving one follower) on the followers' runtime; on the
/// current one if that runtime could not be made.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime() {
        Some(runtime) => runtime.spawn(future),
        None => tokio::spawn(future),
    }
}
