//! The live feed: every log line of every build, and every change of the
//! status and history, for the websocket clients and the log followers.
//!
//! One broadcast channel for the whole service. A build's lines are published
//! as batches, one per write of its log (what one read from Docker gave),
//! and each batch is encoded into its `update` frames once ([`update`]),
//! when it is published: a thousand monitor pages cost a thousand pointer
//! copies per batch, not a thousand encodings, and a million-line build
//! makes about two thousand events, not a million.
//! Publishing never waits: the channel ([`ring`]) keeps each event until
//! every subscriber has read it, up to [`ring::RING_BYTES`] in all; a
//! subscriber that falls further behind loses the oldest events.
//!
//! Losing them from the channel does not lose them for good: every batch
//! carries its byte range in the build's log file, and the feed keeps
//! the log file and written length of the recent builds ([`Live::positions`]).
//! A subscriber that fell behind reads what it missed from the files, which
//! are the source of truth, and skips the events it already has. The last
//! `status` and `history` frames are kept too, so catching up never needs
//! the database.

pub mod ring;
pub mod update;

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use zos_build_core::{LogEvent, LogSink, SinkError};

/// The most text one batch event carries: a larger write of a log is
/// published as several batches (each of whole lines, but for a line
/// longer than this, which goes alone). A quarter of the largest frame:
/// every websocket client keeps a buffer as large as the largest frame it
/// wrote, so with a thousand clients the frame size is the server's
/// memory, while a million-line build still makes only about 500 frames.
pub const MAX_BATCH: usize = update::MAX_UPDATE / 4;
/// Builds whose log positions are remembered (the running ones, and the
/// latest finished ones, whose tails a late subscriber may still need).
pub const REMEMBERED_LOGS: usize = 256;

/// Lines of one build, published together.
#[derive(Debug)]
pub struct LineBatch {
    /// The build.
    pub id: Arc<str>,
    /// Sequence number of the first line.
    pub seq: u64,
    /// Number of lines.
    pub count: u64,
    /// Offset of the first line in the build's log file.
    pub start: u64,
    /// Offset just after the last line's newline.
    pub end: u64,
    /// The lines, each ending with `\n`: bytes `start..end` of the log file.
    pub text: Bytes,
    /// The batched `update` frames of these lines ([`update::batch_frames`]).
    pub frames: Vec<Bytes>,
}

/// One event of the feed.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Lines of a build, with their frames.
    Lines(Arc<LineBatch>),
    /// The set of queued and running builds changed; `frame` is the
    /// `{"event":"status",...}` frame.
    Status {
        /// The encoded frame.
        frame: Bytes,
    },
    /// A build finished; `frame` is the `{"event":"history",...}` frame.
    History {
        /// The encoded frame.
        frame: Bytes,
    },
}

/// Where a build's log is and how much of it the feed has published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The log file.
    pub path: PathBuf,
    /// Bytes of it published so far (whole lines).
    pub end: u64,
    /// Sequence number of the line at `end` (the next one).
    pub seq: u64,
}

#[derive(Debug, Default)]
struct Positions {
    order: VecDeque<Arc<str>>,
    by_build: HashMap<Arc<str>, LogPosition>,
}

#[derive(Debug, Default)]
struct Shared {
    positions: Mutex<Positions>,
    lines: AtomicU64,
    catch_ups: AtomicU64,
    status: Mutex<Option<Bytes>>,
    history: Mutex<Option<Bytes>>,
}

/// Renders the `status` and `history` frames of the feed and publishes
/// them with [`Live::publish`].
#[async_trait]
pub trait Frames: Send + Sync {
    /// Publishes a fresh `status` frame, and a `history` frame when
    /// `history_changed`.
    async fn render(&self, live: &Live, history_changed: bool);
}

impl ring::Weighed for LiveEvent {
    fn bytes(&self) -> usize {
        match self {
            LiveEvent::Lines(batch) => {
                batch.text.len() + batch.frames.iter().map(Bytes::len).sum::<usize>()
            }
            LiveEvent::Status { frame } | LiveEvent::History { frame } => frame.len(),
        }
    }
}

/// A subscription to the feed.
pub type Subscription = ring::Receiver<LiveEvent>;

/// The service's live feed.
pub struct Live {
    sender: Arc<ring::Sender<LiveEvent>>,
    shared: Arc<Shared>,
    frames: Mutex<Option<Arc<dyn Frames>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("subscribers", &self.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// An empty feed.
    pub fn new() -> Live {
        Live {
            sender: Arc::new(ring::channel(ring::RING_BYTES)),
            shared: Arc::default(),
            frames: Mutex::new(None),
        }
    }

    /// Receives every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        self.sender.subscribe()
    }

    /// Bytes of events held for subscribers that have not read them yet.
    pub fn held(&self) -> usize {
        self.sender.held()
    }

    /// Publishes an event; nobody listening is not an error. The latest
    /// `status` and `history` frames are also kept ([`Live::views`]).
    pub fn publish(&self, event: LiveEvent) {
        match &event {
            LiveEvent::Status { frame } => *lock(&self.shared.status) = Some(frame.clone()),
            LiveEvent::History { frame } => *lock(&self.shared.history) = Some(frame.clone()),
            LiveEvent::Lines(_) => {}
        }
        self.sender.send(event);
    }

    /// Says that what the `status` frame shows changed (and the `history`
    /// frame's too, when `history`), and returns once the frames are
    /// published. The scheduler and the reloader call it; the frames are
    /// rendered by the [`Frames`] the HTTP layer installed, which owns the
    /// JSON shapes. Before one is installed, nothing is rendered (a client
    /// connecting later gets frames made from the history).
    pub async fn changed(&self, history: bool) {
        let frames = lock(&self.frames).clone();
        if let Some(frames) = frames {
            frames.render(self, history).await;
        }
    }

    /// Installs what renders the `status` and `history` frames.
    pub fn render_with(&self, frames: Arc<dyn Frames>) {
        *lock(&self.frames) = Some(frames);
    }

    /// The latest `history` and `status` frames published, if any.
    pub fn views(&self) -> (Option<Bytes>, Option<Bytes>) {
        (
            lock(&self.shared.history).clone(),
            lock(&self.shared.status).clone(),
        )
    }

    /// The log positions of the recent builds.
    pub fn positions(&self) -> Vec<(Arc<str>, LogPosition)> {
        let positions = lock(&self.shared.positions);
        positions
            .by_build
            .iter()
            .map(|(id, position)| (id.clone(), position.clone()))
            .collect()
    }

    /// Subscribers now: websocket clients and log followers.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Counts a subscriber reading lines it missed from a log file.
    pub fn caught_up(&self) {
        self.shared.catch_ups.fetch_add(1, Ordering::Relaxed);
    }

    /// Catch-ups from the log files since start-up (for `/metrics`).
    pub fn catch_ups(&self) -> u64 {
        self.shared.catch_ups.load(Ordering::Relaxed)
    }

    /// Log lines published since start-up (for `/metrics`).
    pub fn lines_published(&self) -> u64 {
        self.shared.lines.load(Ordering::Relaxed)
    }

    /// A log sink publishing the lines of build `id`, whose log file `path`
    /// holds `written` bytes already; its first line will be numbered 0
    /// unless the first batch says otherwise.
    pub fn sink(&self, id: &str, path: &Path, written: u64) -> LiveSink {
        let id: Arc<str> = Arc::from(id);
        let mut positions = lock(&self.shared.positions);
        if positions.by_build.len() >= REMEMBERED_LOGS {
            if let Some(oldest) = positions.order.pop_front() {
                positions.by_build.remove(&oldest);
            }
        }
        positions.order.push_back(id.clone());
        positions.by_build.insert(
            id.clone(),
            LogPosition {
                path: path.to_path_buf(),
                end: written,
                seq: 0,
            },
        );
        LiveSink {
            id,
            sender: self.sender.clone(),
            shared: self.shared.clone(),
            end: written,
        }
    }
}

/// Publishes the lines of one build to the live feed.
pub struct LiveSink {
    id: Arc<str>,
    sender: Arc<ring::Sender<LiveEvent>>,
    shared: Arc<Shared>,
    /// Bytes of the log file published so far.
    end: u64,
}

#[async_trait]
impl LogSink for LiveSink {
    async fn write(&mut self, events: &[LogEvent]) -> Result<(), SinkError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        self.shared
            .lines
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        // The file sink wrote the batch before this one runs (it comes first
        // in the fan-out): the position may move past what was sent.
        let start = self.end;
        self.end += events.iter().map(|e| e.text.len() as u64 + 1).sum::<u64>();
        let next = first.seq + events.len() as u64;
        if let Some(position) = lock(&self.shared.positions).by_build.get_mut(&self.id) {
            position.end = self.end;
            position.seq = next;
        }
        if self.sender.receiver_count() == 0 {
            return Ok(());
        }
        let mut offset = start;
        for group in batches(events) {
            let mut text = String::with_capacity(group.iter().map(|e| e.text.len() + 1).sum());
            for event in group {
                text.push_str(&event.text);
                text.push('\n');
            }
            let seq = group[0].seq;
            let (frames, count) = update::batch_frames(&self.id, seq, &text);
            let end = offset + text.len() as u64;
            self.sender.send(LiveEvent::Lines(Arc::new(LineBatch {
                id: self.id.clone(),
                seq,
                count,
                start: offset,
                end,
                text: Bytes::from(text),
                frames,
            })));
            offset = end;
        }
        Ok(())
    }
}

/// `events` in groups of at most [`MAX_BATCH`] bytes of text (a longer line
/// alone).
fn batches(events: &[LogEvent]) -> impl Iterator<Item = &[LogEvent]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = 0;
        let mut n = 0;
        for event in rest {
            size += event.text.len() + 1;
            if n > 0 && size > MAX_BATCH {
                break;
            }
            n += 1;
        }
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some(group)
    })
}

/// At most `limit` bytes of `path` from `offset`; nothing when the file does
/// not exist (yet) or ends before `offset`.
pub async fn read_log(path: &Path, offset: u64, limit: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_build_core::log::Sequencer;
    use zos_build_core::LogStream;

    fn batch(event: LiveEvent) -> Arc<LineBatch> {
        match event {
            LiveEvent::Lines(batch) => batch,
            other => panic!("expected lines, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_write_becomes_one_batch_with_its_place_in_the_file() {
        let live = Live::new();
        let mut receiver = live.subscribe();
        let mut sink = live.sink("b1", Path::new("/logs/b1.log"), 10);
        let mut seq = Sequencer::starting_at(5);
        let line = seq.event(LogStream::Stdout, "a \"quoted\" <b>line</b>".into());
        let next = seq.event(LogStream::Stdout, "é".into());
        sink.write(&[line, next]).await.unwrap();
        let batch = batch(receiver.recv().await.unwrap());
        assert_eq!(&*batch.id, "b1");
        assert_eq!((batch.seq, batch.count), (5, 2));
        assert_eq!((batch.start, batch.end), (10, 10 + 22 + 1 + 3));
        assert_eq!(&batch.text[..], "a \"quoted\" <b>line</b>\né\n".as_bytes());
        assert_eq!(batch.frames.len(), 1);
        let value: serde_json::Value = serde_json::from_slice(&batch.frames[0]).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event": "update", "payload": {
                "id": "b1", "seq": 5, "count": 2, "line": "a \"quoted\" <b>line</b>\né\n"}})
        );
        assert_eq!(live.lines_published(), 2);
        let positions = live.positions();
        assert_eq!(positions.len(), 1);
        assert_eq!((positions[0].1.end, positions[0].1.seq), (36, 7));
    }

    #[tokio::test]
    async fn a_large_write_is_published_in_bounded_batches() {
        let live = Live::new();
        let mut receiver = live.subscribe();
        let mut sink = live.sink("b", Path::new("/x"), 0);
        let mut seq = Sequencer::default();
        let events: Vec<_> = (0..20_001)
            .map(|i| match i {
                10 => seq.event(LogStream::Stdout, "y".repeat(3 * MAX_BATCH)),
                _ => seq.event(LogStream::Stdout, format!("line {i}")),
            })
            .collect();
        sink.write(&events).await.unwrap();
        let (mut next_seq, mut next_byte, mut batches) = (0, 0, 0);
        while let Ok(Some(event)) = receiver.try_recv() {
            let batch = batch(event);
            assert_eq!((batch.seq, batch.start), (next_seq, next_byte));
            assert!(batch.text.len() <= MAX_BATCH || batch.count == 1);
            next_seq += batch.count;
            next_byte = batch.end;
            batches += 1;
        }
        assert_eq!(next_seq, 20_001);
        assert!(batches >= 4, "{batches} batches");
    }

    #[test]
    fn only_the_recent_builds_are_remembered_and_views_are_kept() {
        let live = Live::new();
        for i in 0..REMEMBERED_LOGS + 3 {
            live.sink(&format!("b{i}"), Path::new("/x"), 0);
        }
        let positions = live.positions();
        assert_eq!(positions.len(), REMEMBERED_LOGS);
        assert!(!positions.iter().any(|(id, _)| &**id == "b0"));
        live.publish(LiveEvent::Status {
            frame: Bytes::from_static(b"s"),
        });
        assert_eq!(live.views(), (None, Some(Bytes::from_static(b"s"))));
    }
}
