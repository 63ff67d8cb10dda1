// The zos-build monitor page: running builds with their live consoles, and
// the history, fed by the server's /buildio websocket.
//
// Protocol (server to client only): frames {"event", "payload"} where event
// is "server" (on connect: {configuration_repository, repositories,
// branches, kernel_targets}, what this server tracks), "history" (finished
// builds, newest first: replaces the history), "status" (queued and running
// builds keyed by id: replaces the running section), "update" (log lines,
// below) or "lagged" ({id, skipped}: lines of build id that could not be
// read back).
//
// An "update" carries a batch of lines of one build: {id, seq, count, line}
// where `line` is `count` lines each ending with "\n" and `seq` the number
// of the first one (from 0 per build). A line too long for one frame comes in
// consecutive frames of its own, each with `piece` (0, 1, ...) and the line's
// `seq`; all but the last have count 0. A frame's seq is the previous one's
// seq + count: anything else is a gap (shown in the console) or a repeat
// (skipped). A frame without `count` is one line without its newline (the
// server's ?lines=1 mode, or an older server).
//
// Safety: every text that comes from the server (which copies it from a
// GitHub push or from a build's output) reaches the document through
// textContent or text nodes only; no markup is ever built from data. Links
// taken from data are used only when they are http(s).
//
// Responsiveness: a console keeps at most CONSOLE_LINES lines and counts the
// ones it let go. A batch is kept as it came (one string) until it is drawn,
// at most once per animation frame; only the lines that will be shown are
// split, parsed and drawn, and of the others only those holding an escape
// sequence are read (for the colour state). A build printing a million
// lines costs the page about a hundred frames and a bounded amount of DOM
// and memory, and a hidden tab (which gets no animation frames) keeps at
// most what one console shows waiting per build (CONSOLE_LINES lines,
// CONSOLE_CHARS characters, give or take one frame).

'use strict';

/** Lines kept in one build's console. */
const CONSOLE_LINES = 500;
/** Delay before reconnecting a closed websocket, as the old page did. */
const RECONNECT_MS = 2000;
/** Commits listed per build (GitHub sends at most 20 per push anyway). */
const MAX_COMMITS = 20;
/** Time between two draws, as a multiple of the last draw's cost. */
const DRAW_SPACING = 4;
/** Builds whose lines may be waiting for their first status frame. */
const MAX_ORPHANS = 20;
/**
 * Characters kept in one build's console, and waiting to be drawn: long
 * lines take the room of many short ones (the oldest rows go first), so
 * that a console of long lines stays small too.
 */
const CONSOLE_CHARS = 4 * 1024 * 1024;
/**
 * The longest line shown, in characters: the server keeps lines of up to
 * 1 MiB whole, and sends those longer than a frame in pieces; the page puts
 * together at most this much of one and says where the rest is.
 */
const MAX_LINE_CHARS = 1024 * 1024;
/** Statuses with their own colour; anything else is drawn as "other". */
const STATUSES = ['queued', 'initializing', 'preparing', 'building', 'committing', 'success', 'error', 'cancelled'];

// ---------------------------------------------------------------------------
// ANSI escape sequences: SGR colours become classes, everything else is
// dropped. The parser works on one line at a time and carries the colour
// state from line to line, like a terminal does.

const ansi = (() => {
  /** A fresh colour state: default colours, normal weight. */
  function fresh() {
    return { fg: -1, bg: -1, bold: false };
  }

  function toInt(text) {
    const value = parseInt(text, 10);
    return Number.isFinite(value) ? value : 0;
  }

  /** 256-colour indexes 0-15 are the classic palette; others are not drawn. */
  function setIndexed(state, which, index) {
    const value = index >= 0 && index < 16 ? index : -1;
    if (which === 38) state.fg = value;
    else state.bg = value;
  }

  // The numbers of one SGR sequence, reused from one sequence to the next.
  const codes = [];

  /** Reads `params` into `codes`; false when it is not an SGR to draw. */
  function readCodes(params) {
    codes.length = 0;
    const first = params.charCodeAt(0);
    if (first >= 0x3c && first <= 0x3f) return false; // private (<=>?)
    if (params.indexOf(':') === -1) {
      // The common case, without allocating: digits separated by ';'.
      let value = 0;
      for (let i = 0; i < params.length; i++) {
        const c = params.charCodeAt(i);
        if (c === 0x3b) {
          codes.push(value);
          value = 0;
        } else if (c >= 0x30 && c <= 0x39 && value < 100000) {
          value = value * 10 + (c - 0x30);
        }
      }
      codes.push(value);
      return true;
    }
    // ITU sub-parameters (38:5:n): rewritten in the ';' form; other
    // colon groups (true colour, underline styles) keep their first number.
    for (const part of params.split(';')) {
      if (part.indexOf(':') === -1) {
        codes.push(toInt(part));
        continue;
      }
      const sub = part.split(':');
      const code = toInt(sub[0]);
      if ((code === 38 || code === 48) && toInt(sub[1]) === 5) codes.push(code, 5, toInt(sub[2]));
      else if (code === 38 || code === 48) codes.push(code, 2, 0, 0, 0);
      else codes.push(code);
    }
    return true;
  }

  /** Applies the parameters of one `ESC [ ... m`. */
  function applySgr(state, params) {
    if (!readCodes(params)) return;
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) {
        state.fg = -1;
        state.bg = -1;
        state.bold = false;
      } else if (code === 1) {
        state.bold = true;
      } else if (code === 22) {
        state.bold = false;
      } else if (code >= 30 && code <= 37) {
        state.fg = code - 30;
      } else if (code === 39) {
        state.fg = -1;
      } else if (code >= 40 && code <= 47) {
        state.bg = code - 40;
      } else if (code === 49) {
        state.bg = -1;
      } else if (code >= 90 && code <= 97) {
        state.fg = code - 90 + 8;
      } else if (code >= 100 && code <= 107) {
        state.bg = code - 100 + 8;
      } else if (code === 38 || code === 48) {
        // Extended colours carry arguments that must not be read as codes.
        const mode = codes[i + 1];
        if (mode === 5) {
          setIndexed(state, code, codes[i + 2] === undefined ? -1 : codes[i + 2]);
          i += 2;
        } else if (mode === 2) {
          setIndexed(state, code, -1); // true colour: not drawn
          i += 4;
        } else {
          i += 1;
        }
      }
      // Other attributes (italic, underline, blink...) are not drawn.
    }
  }

  // Class attributes by colour state (see classOf).
  const classCache = [];

  /** The class attribute for a colour state; '' for the defaults. */
  function classOf(state) {
    const key = (state.fg + 1) * 34 + (state.bg + 1) * 2 + (state.bold ? 1 : 0);
    let name = classCache[key];
    if (name === undefined) {
      const names = [];
      if (state.fg >= 0) names.push('ansi-fg-' + state.fg);
      if (state.bg >= 0) names.push('ansi-bg-' + state.bg);
      if (state.bold) names.push('ansi-bold');
      name = names.join(' ');
      classCache[key] = name;
    }
    return name;
  }

  /** Index just past a string sequence (OSC, DCS...): BEL, ESC \ or ST. */
  function stringEnd(line, i) {
    for (let j = i; j < line.length; j++) {
      const c = line.charCodeAt(j);
      if (c === 0x07 || c === 0x9c) return j + 1;
      if (c === 0x1b && line.charCodeAt(j + 1) === 0x5c) return j + 2;
    }
    return line.length;
  }

  // The result of readEscape, reused to spare an allocation per sequence.
  const escape = { end: 0, sgr: null };

  /** Reads the escape sequence starting at `i` (ESC or the C1 CSI). */
  function readEscape(line, i) {
    const n = line.length;
    escape.sgr = null;
    let j;
    if (line.charCodeAt(i) === 0x9b) {
      j = i + 1;
    } else {
      const kind = line.charCodeAt(i + 1);
      if (kind === 0x5b) {
        j = i + 2; // ESC [
      } else if (kind === 0x5d || kind === 0x50 || kind === 0x58 || kind === 0x5e || kind === 0x5f) {
        escape.end = stringEnd(line, i + 2); // OSC, DCS, SOS, PM, APC
        return escape;
      } else {
        // ESC, intermediate bytes, one final byte (ESC 7, ESC ( B...).
        j = i + 1;
        while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
        const final = line.charCodeAt(j);
        escape.end = final >= 0x30 && final <= 0x7e ? j + 1 : j;
        return escape;
      }
    }
    // CSI: parameter bytes, intermediate bytes, one final byte.
    const paramsStart = j;
    while (j < n && line.charCodeAt(j) >= 0x30 && line.charCodeAt(j) <= 0x3f) j++;
    const paramsEnd = j;
    while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
    if (j >= n) {
      escape.end = n; // cut short: drop it
      return escape;
    }
    const final = line.charCodeAt(j);
    if (final < 0x40 || final > 0x7e) {
      escape.end = j; // malformed: drop what was read, keep the rest
      return escape;
    }
    if (final === 0x6d && paramsEnd === j) escape.sgr = line.slice(paramsStart, paramsEnd);
    escape.end = j + 1;
    return escape;
  }

  /**
   * Splits one line into runs of text and their class: a flat array
   * [text, class, text, class, ...]. Updates `state`. A carriage return
   * followed by more text starts the line over, as on a terminal; other
   * control characters except the tab are dropped.
   */
  function parse(line, state) {
    const out = [];
    let cls = classOf(state);
    let text = '';
    let start = 0;
    let i = 0;
    const n = line.length;
    while (i < n) {
      const c = line.charCodeAt(i);
      if ((c >= 0x20 && c < 0x7f) || c > 0x9f || c === 0x09) {
        i++;
        continue;
      }
      text += line.slice(start, i);
      if (c === 0x1b || c === 0x9b) {
        const seq = readEscape(line, i);
        if (seq.sgr !== null) {
          if (text) {
            out.push(text, cls);
            text = '';
          }
          applySgr(state, seq.sgr);
          cls = classOf(state);
        }
        i = seq.end;
      } else if (c === 0x0d) {
        let k = i;
        while (k < n && line.charCodeAt(k) === 0x0d) k++;
        if (k < n) {
          out.length = 0;
          text = '';
        }
        i = k;
      } else {
        i++;
      }
      start = i;
    }
    text += line.slice(start, n);
    if (text) out.push(text, cls);
    return out;
  }

  /**
   * Updates `state` as if the lines of `text` before index `end` had been
   * drawn: only the lines holding an escape sequence (ESC or the C1 CSI)
   * are read, each as `parse` reads it, so a batch of plain lines costs two
   * native searches.
   */
  function skip(text, state, end) {
    const stop = end === undefined ? text.length : end;
    let esc = text.indexOf('\x1b');
    let csi = text.indexOf('\x9b');
    let from = 0;
    for (;;) {
      if (esc !== -1 && esc < from) esc = text.indexOf('\x1b', from);
      if (csi !== -1 && csi < from) csi = text.indexOf('\x9b', from);
      const at = esc === -1 ? csi : csi === -1 ? esc : Math.min(esc, csi);
      if (at === -1 || at >= stop) return;
      const lineStart = text.lastIndexOf('\n', at) + 1;
      let lineEnd = text.indexOf('\n', at);
      if (lineEnd === -1 || lineEnd > stop) lineEnd = stop;
      parse(text.slice(lineStart, lineEnd), state);
      from = lineEnd + 1;
    }
  }

  return { fresh, parse, skip };
})();

// ---------------------------------------------------------------------------
// Small DOM helpers. Text always goes through textContent.

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function link(href, text, className) {
  const a = el('a', className, text);
  a.href = href;
  return a;
}

/** `value` as a string; '' for null and undefined. */
function str(value) {
  return value === undefined || value === null ? '' : String(value);
}

/** `value` as an absolute http(s) URL, or null. */
function httpUrl(value) {
  if (typeof value !== 'string' || value === '') return null;
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch (_) {
    return null;
  }
}

function reportUrl(id) {
  return '/report/' + encodeURIComponent(id);
}

function artifactUrl(name) {
  return '/artifacts/' + encodeURIComponent(name);
}

function statusClass(status) {
  return STATUSES.indexOf(status) !== -1 ? 'status-' + status : 'status-other';
}

function seconds(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function pad(n) {
  return n < 10 ? '0' + n : String(n);
}

function formatDuration(total) {
  const s = Math.max(0, Math.floor(total));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return h + 'h ' + pad(m) + 'm ' + pad(rest) + 's';
  if (m > 0) return m + 'm ' + pad(rest) + 's';
  return rest + 's';
}

function formatTime(unix) {
  return new Date(unix * 1000).toLocaleString();
}

function now() {
  return Date.now() / 1000;
}

function firstLine(text) {
  const s = str(text);
  const end = s.indexOf('\n');
  return (end === -1 ? s : s.slice(0, end)).trim();
}

function badge(status) {
  return el('span', 'badge ' + statusClass(status), status || 'unknown');
}

/** The list of a push's commits: id, message's first line, author. */
function commitList(commits) {
  const list = el('ul', 'commits');
  if (!Array.isArray(commits)) return list;
  for (const commit of commits.slice(0, MAX_COMMITS)) {
    if (!commit || typeof commit !== 'object') continue;
    const item = el('li', 'commit');
    const sha = str(commit.id).slice(0, 10);
    const url = httpUrl(commit.url);
    const shaNode = url ? link(url, sha, 'sha') : el('span', 'sha', sha);
    if (url) shaNode.rel = 'noopener noreferrer';
    item.appendChild(shaNode);
    item.appendChild(el('span', 'message', firstLine(commit.message)));
    const author = commit.author && typeof commit.author === 'object' ? commit.author : {};
    const who = str(author.name) || str(author.username);
    if (who) item.appendChild(el('span', 'author', who));
    if (commit.timestamp) item.title = str(commit.timestamp);
    list.appendChild(item);
  }
  if (commits.length > MAX_COMMITS) {
    list.appendChild(el('li', 'more', '… and ' + (commits.length - MAX_COMMITS) + ' more'));
  }
  return list;
}

/** A <dl> of the rows whose value is not empty. */
function details(rows) {
  const list = el('dl', 'meta');
  for (const [term, value] of rows) {
    if (value === null || value === undefined || value === '') continue;
    list.appendChild(el('dt', null, term));
    const dd = el('dd');
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = String(value);
    list.appendChild(dd);
  }
  return list;
}

/**
 * The artifact of `build` as a link: to `artifact_url` (the hub, or this
 * server's /artifacts/) under `artifact_name`; a server without those fields
 * sends the bare name, served under /artifacts/. An artifact with nowhere to
 * fetch it from (an imported build of the old service) is shown as text.
 */
function artifactLink(build) {
  const name = str(build.artifact_name !== undefined ? build.artifact_name : build.artifact);
  if (!name) return null;
  if (build.artifact_url === undefined) return link(artifactUrl(name), name, 'artifact');
  const url = httpUrl(build.artifact_url);
  return url ? link(url, name, 'artifact') : name;
}

// ---------------------------------------------------------------------------
// Rendering log lines, once per animation frame.

const dirty = new Set();
let frameRequested = false;
let lastDraw = -Infinity;
let drawCost = 0;

function schedule(view) {
  dirty.add(view);
  if (!frameRequested) {
    frameRequested = true;
    requestAnimationFrame(renderFrame);
  }
}

function renderFrame(time) {
  // Under a flood of lines, drawing at every frame would leave little time
  // to read the socket and to answer the reader: between two draws, leave
  // a few times what the last one cost (never more than a quarter second).
  if (time - lastDraw < Math.min(DRAW_SPACING * drawCost, 250)) {
    requestAnimationFrame(renderFrame);
    return;
  }
  frameRequested = false;
  const start = performance.now();
  const views = Array.from(dirty);
  dirty.clear();
  for (const view of views) view.flush();
  lastDraw = start;
  drawCost = performance.now() - start;
}

/** A console line made of ANSI runs. */
function lineElement(runs) {
  const line = el('div', 'line');
  for (let k = 0; k < runs.length; k += 2) {
    if (runs[k + 1]) line.appendChild(el('span', runs[k + 1], runs[k]));
    else line.appendChild(document.createTextNode(runs[k]));
  }
  return line;
}

/** A notice between log lines, e.g. that some lines were missed. */
class Notice {
  constructor(text, id) {
    this.text = text;
    this.id = id;
  }

  element() {
    const line = el('div', 'line notice', this.text + ' ');
    line.appendChild(link(reportUrl(this.id), 'full log'));
    return line;
  }
}

/**
 * Log lines waiting to be drawn: `text` holds `lines` lines joined by "\n"
 * (no newline at its end), as they came in one frame.
 */
class Chunk {
  constructor(text, lines) {
    this.text = text;
    this.lines = lines;
  }
}

/** Console rows an item of the queue becomes. */
function rows(item) {
  return item instanceof Chunk ? item.lines : 1;
}

/** Characters of an item of the queue (notices are not counted). */
function chars(item) {
  return item instanceof Chunk ? item.text.length : 0;
}

/** Characters of each console row (the length of its line as received). */
const rowChars = new WeakMap();

/** The index where the last `count` lines of `text` begin (0: all of it). */
function tailStart(text, count) {
  let at = text.length;
  for (let k = 0; k < count; k++) {
    at = text.lastIndexOf('\n', at - 1);
    if (at === -1) return 0;
  }
  return at + 1;
}

/** `text` without its first `count` lines ('' when it has no more). */
function withoutLines(text, count) {
  let at = -1;
  for (let k = 0; k < count; k++) {
    at = text.indexOf('\n', at + 1);
    if (at === -1) return '';
  }
  return text.slice(at + 1);
}

/** A whole number from the protocol, or null. */
function wholeNumber(value) {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;
}

// ---------------------------------------------------------------------------
// A running or queued build.

class BuildView {
  constructor(id) {
    this.id = id;
    this.build = {};
    this.commitsKey = null;
    // Chunks and Notices not drawn yet, and the console rows they make.
    this.pending = [];
    this.pendingRows = 0;
    this.pendingChars = 0;
    this.consoleChars = 0; // characters of the lines in the console
    this.dropped = 0; // log lines let go from the top of the console
    this.sgr = ansi.fresh();
    this.follow = true; // scroll along while the reader is at the bottom
    this.shown = false; // in the running section (orphans are not)
    this.removed = false;
    // The sequence: the number of the next line expected (null until the
    // first frame), and the pieces of a long line put together so far.
    this.expected = null;
    this.partial = null;

    this.root = el('article', 'build');
    this.root.dataset.buildId = id;

    const head = el('header', 'build-head');
    this.badge = el('span', 'badge');
    this.name = el('h3', 'name');
    this.tag = el('span', 'tag');
    this.elapsed = el('span', 'elapsed');
    head.append(this.badge, this.name, this.tag, this.elapsed);

    this.meta = el('div', 'build-meta');
    this.commits = el('div', 'build-commits');

    const consoleBox = el('div', 'console-box');
    const consoleHead = el('div', 'console-head');
    this.earlier = el('span', 'earlier');
    this.fullLog = link(reportUrl(id), 'full log', 'full-log');
    consoleHead.append(this.earlier, this.fullLog);
    this.console = el('div', 'console');
    this.console.dataset.buildId = id;
    this.console.setAttribute('role', 'log');
    this.console.setAttribute('aria-live', 'off');
    this.console.tabIndex = 0;
    this.console.addEventListener('scroll', () => {
      const c = this.console;
      this.follow = c.scrollHeight - c.scrollTop - c.clientHeight < 8;
    }, { passive: true });
    consoleBox.append(consoleHead, this.console);

    this.root.append(head, this.meta, this.commits, consoleBox);
    this.updateEarlier();
  }

  /** Shows the fields of a status entry. */
  update(build) {
    this.build = build;
    const status = str(build.status);
    this.root.className = 'build ' + statusClass(status);
    this.badge.className = 'badge ' + statusClass(status);
    this.badge.textContent = status || 'unknown';
    this.name.textContent = str(build.name) || this.id;
    this.tag.textContent = str(build.tag);
    this.tag.hidden = !build.tag;
    const started = seconds(build.started);
    this.elapsed.title = started === null ? 'not started yet' : 'started ' + formatTime(started);
    this.tick();

    const docker = str(build.docker);
    this.meta.replaceChildren(details([
      ['Base image', str(build.baseimage)],
      ['Container', docker === 'system' ? '' : docker],
      ['Artifact', artifactLink(build)],
      ['Error', str(build.error)],
    ]));

    let key;
    try {
      key = JSON.stringify(build.commits);
    } catch (_) {
      key = '';
    }
    if (key !== this.commitsKey) {
      this.commitsKey = key;
      this.commits.replaceChildren(commitList(build.commits));
    }
  }

  /** Refreshes the ticking build time. */
  tick() {
    const started = seconds(this.build.started);
    if (started === null) {
      this.elapsed.textContent = 'queued';
      return;
    }
    const ended = seconds(this.build.ended);
    this.elapsed.textContent = formatDuration((ended === null ? now() : ended) - started);
  }

  /**
   * Starts the console over from the `monitor` of a status entry (its last
   * lines, joined by "\n"); `kept` (queued items) follow it.
   */
  seed(monitor, kept) {
    this.console.replaceChildren();
    this.consoleChars = 0;
    this.takePending();
    this.dropped = 0;
    this.sgr = ansi.fresh();
    this.follow = true;
    let text = str(monitor);
    if (text !== '') {
      if (text.endsWith('\n')) text = text.slice(0, -1);
      let lines = 1;
      for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++;
      this.queue(new Chunk(text, lines));
    }
    for (const item of kept || []) this.queue(item);
    this.updateEarlier();
  }

  /** Forgets where the sequence was (a new connection starts its own). */
  restartSequence() {
    this.expected = null;
    this.partial = null;
  }

  /** Takes the items not drawn yet out of the queue. */
  takePending() {
    const items = this.pending;
    this.pending = [];
    this.pendingRows = 0;
    this.pendingChars = 0;
    return items;
  }

  /** One `update` payload of this build. */
  receive(payload) {
    let text = str(payload.line);
    let seq = wholeNumber(payload.seq);
    let lines = wholeNumber(payload.count);
    if (lines === null) {
      // One line per frame, without its newline.
      if (seq !== null && this.expected !== null && seq < this.expected) return;
      if (seq !== null) this.inSequence(seq, 1);
      this.queueLine(text);
      return;
    }
    if (seq !== null && this.expected !== null && seq < this.expected) {
      // Lines this page has already: only the rest is new.
      const repeated = this.expected - seq;
      if (repeated >= lines) return;
      text = withoutLines(text, repeated);
      lines -= repeated;
      seq = this.expected;
    }
    if (seq !== null) this.inSequence(seq, lines);
    if (payload.piece !== undefined) {
      this.piece(wholeNumber(payload.piece), seq, text, lines);
      return;
    }
    if (lines === 0) return;
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (lines === 1) this.queueLine(text);
    else this.queue(new Chunk(text, lines));
  }

  /**
   * Checks a frame's `seq` against the line expected: a gap is said in the
   * console (a repeat was cut off before). Then expects the line after the
   * frame's `lines`.
   */
  inSequence(seq, lines) {
    if (this.expected !== null && seq > this.expected) {
      const missing = seq - this.expected;
      this.partial = null;
      this.queue(new Notice('… ' + missing.toLocaleString() + (missing === 1 ? ' line' : ' lines') +
        ' missing here (this page fell behind);', this.id));
    }
    this.expected = seq + lines;
  }

  /** A piece of a long line; the last one (count 1) completes it. */
  piece(index, seq, text, lines) {
    const partial = this.partial;
    if (index === 0) {
      this.partial = { seq, next: 1, parts: [text], length: text.length };
    } else if (partial !== null && index === partial.next && seq === partial.seq) {
      partial.next++;
      if (partial.length < MAX_LINE_CHARS) {
        partial.parts.push(text);
        partial.length += text.length;
      }
    } else {
      // The beginning of this line never came (this page connected in its
      // middle, or the frames were lost): what is left of it is not shown.
      this.partial = null;
      return;
    }
    if (lines === 0) return;
    const line = this.partial.parts.join('');
    this.partial = null;
    this.queueLine(line.endsWith('\n') ? line.slice(0, -1) : line);
  }

  /** Queues one line, cut after MAX_LINE_CHARS (a notice says so). */
  queueLine(line) {
    if (line.length <= MAX_LINE_CHARS) {
      this.queue(new Chunk(line, 1));
      return;
    }
    this.queue(new Chunk(line.slice(0, MAX_LINE_CHARS), 1));
    this.notice('… the line above is cut after ' + MAX_LINE_CHARS.toLocaleString() +
      ' characters;');
  }

  /** Queues a notice (shown in order with the lines). */
  notice(text) {
    this.queue(new Notice(text, this.id));
  }

  /**
   * Queues a chunk or a notice, then lets go the queued items that can no
   * longer be shown: those followed by CONSOLE_LINES rows or CONSOLE_CHARS
   * characters or more. A chunk let go costs the search of its escape
   * sequences, and its lines are counted as earlier lines.
   */
  queue(item) {
    const pending = this.pending;
    pending.push(item);
    this.pendingRows += rows(item);
    this.pendingChars += chars(item);
    let gone = 0;
    while (gone < pending.length - 1) {
      const first = pending[gone];
      if (this.pendingRows - rows(first) < CONSOLE_LINES &&
          this.pendingChars - chars(first) < CONSOLE_CHARS) break;
      gone++;
      this.pendingRows -= rows(first);
      this.pendingChars -= chars(first);
      if (first instanceof Chunk) {
        ansi.skip(first.text, this.sgr);
        this.dropped += first.lines;
      }
    }
    if (gone > 0) pending.splice(0, gone);
    if (this.shown) schedule(this);
  }

  /**
   * Draws the queued items: one DOM insertion, then trims the console to
   * its bounds. Of the first chunk only the lines that fit are split.
   */
  flush() {
    if (this.removed) return;
    const total = this.pendingRows;
    const totalChars = this.pendingChars;
    const items = this.takePending();
    if (items.length === 0) return;
    const box = this.console;
    if (total >= CONSOLE_LINES || totalChars >= CONSOLE_CHARS) {
      // Everything shown now would be trimmed anyway.
      this.dropped += box.querySelectorAll(':scope > .line:not(.notice)').length;
      box.replaceChildren();
      this.consoleChars = 0;
    }
    // Rows of the first item that do not fit (queue() left at most that).
    let excess = Math.max(0, total - CONSOLE_LINES);
    const fragment = document.createDocumentFragment();
    for (const item of items) {
      if (!(item instanceof Chunk)) {
        fragment.appendChild(item.element());
        continue;
      }
      let text = item.text;
      if (excess > 0) {
        const start = tailStart(text, item.lines - excess);
        if (start > 0) ansi.skip(text, this.sgr, start - 1);
        this.dropped += excess;
        text = text.slice(start);
        excess = 0;
      }
      for (const line of text.split('\n')) {
        const row = lineElement(ansi.parse(line, this.sgr));
        rowChars.set(row, line.length);
        this.consoleChars += line.length;
        fragment.appendChild(row);
      }
    }
    box.appendChild(fragment);
    let count = box.childElementCount;
    while (count > CONSOLE_LINES || (count > 1 && this.consoleChars > CONSOLE_CHARS)) {
      const first = box.firstElementChild;
      if (!first.classList.contains('notice')) this.dropped++;
      this.consoleChars -= rowChars.get(first) || 0;
      first.remove();
      count--;
    }
    this.updateEarlier();
    if (this.follow) box.scrollTop = box.scrollHeight;
  }

  updateEarlier() {
    this.earlier.textContent =
      this.dropped > 0 ? '… ' + this.dropped.toLocaleString() + ' earlier lines: ' : '';
  }

  remove() {
    this.removed = true;
    this.takePending();
    this.partial = null;
    dirty.delete(this);
    this.root.remove();
  }
}

// ---------------------------------------------------------------------------
// The page's sections.

const page = {
  running: null, // id="running"
  runningList: null,
  runningCount: null,
  history: null, // id="history"
  historyList: null,
  banner: null, // id="disconnected"
  connection: null,
  tracking: null, // id="tracking": what the server tracks
};

/** Running and queued builds by id. */
const running = new Map();
/**
 * Builds whose lines came before any status frame listing them, by id:
 * views not shown (their queues are bounded like any console's), at most
 * MAX_ORPHANS of them.
 */
const orphans = new Map();
/** The payload of the last `server` event; null before one (or from an older server). */
let serverInfo = null;
/** Whether a `status` frame came on the current connection. */
let statusSeen = false;

function buildOrder(a, b) {
  const qa = seconds(a.build.started) === null ? 1 : 0;
  const qb = seconds(b.build.started) === null ? 1 : 0;
  if (qa !== qb) return qa - qb;
  const sa = seconds(a.build.started) || 0;
  const sb = seconds(b.build.started) || 0;
  if (sa !== sb) return sa - sb;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A paragraph of text and `code` parts: [text, code, text, ...]. */
function prose(className, parts) {
  const p = el('p', className);
  parts.forEach((part, i) => {
    if (i % 2 === 1) p.appendChild(el('code', null, part));
    else if (part) p.appendChild(document.createTextNode(part));
  });
  return p;
}

/** Whether the server said it tracks no repository branch. */
function tracksNothing() {
  if (serverInfo === null) return false;
  return str(serverInfo.configuration_repository) === '' ||
    wholeNumber(serverInfo.repositories) === 0 || wholeNumber(serverInfo.branches) === 0;
}

/** "1 branch", "2 branches"; "? branches" for a count the server did not send. */
function plural(n, one, many) {
  if (n === null) return '? ' + many;
  return n.toLocaleString() + ' ' + (n === 1 ? one : many);
}

/**
 * What the running section says when it holds no build: that nothing is
 * building, and on a server that tracks nothing, how to start tracking.
 */
function idleContent() {
  const box = el('div', 'empty idle');
  if (!statusSeen) {
    box.appendChild(el('p', null, 'Waiting for the server…'));
    return box;
  }
  box.appendChild(el('p', 'idle-title', 'Nothing is building: no build is running or queued.'));
  if (!tracksNothing()) return box;
  const repository = str(serverInfo.configuration_repository);
  if (repository === '') {
    box.appendChild(prose('setup', [
      'This server tracks no repository: it has no configuration repository. To start tracking, set the ',
      'configuration-repository', ' key of the server\'s configuration (see ',
      'docs/server-configuration.md', '), then restart it.',
    ]));
  } else {
    box.appendChild(prose('setup', [
      'This server tracks no repository: its configuration repository, ', repository,
      ', names no branch. To start tracking, add a branch file to it (see ',
      'docs/configuration-repository.md', '), or set the ', 'configuration-repository',
      ' key of the server\'s configuration to another one (see ', 'docs/server-configuration.md', ').',
    ]));
  }
  return box;
}

/** Puts the idle text in the running section when it holds no build. */
function showIdle() {
  const list = page.runningList;
  const empty = list.querySelector(':scope > .empty');
  if (running.size > 0) {
    if (empty) empty.remove();
    return;
  }
  const content = idleContent();
  if (empty) empty.replaceWith(content);
  else list.appendChild(content);
}

/** `server`: what this server tracks, in the header (and the idle text). */
function onServer(payload) {
  serverInfo = payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {};
  const repository = str(serverInfo.configuration_repository);
  const repositories = wholeNumber(serverInfo.repositories);
  const branches = wholeNumber(serverInfo.branches);
  const targets = Array.isArray(serverInfo.kernel_targets)
    ? serverInfo.kernel_targets.map(str).filter((t) => t !== '') : [];
  const parts = [];
  if (repository === '') {
    parts.push('no configuration repository');
  } else {
    parts.push('tracking ' + (branches === null ? '' : plural(branches, 'branch', 'branches') + ' of ') +
      plural(repositories, 'repository', 'repositories') + ' from ' + repository);
  }
  if (targets.length > 0) {
    parts.push((targets.length === 1 ? 'kernel target ' : 'kernel targets ') + targets.join(', '));
  }
  page.tracking.textContent = parts.join(' · ');
  page.tracking.hidden = false;
  showIdle();
}

/** `status`: the running section becomes exactly these builds. */
function onStatus(payload, reseed) {
  statusSeen = true;
  const entries = payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {};
  const seen = new Set();
  const views = [];
  for (const key of Object.keys(entries)) {
    const build = entries[key];
    if (!build || typeof build !== 'object') continue;
    const id = str(build.id) || key;
    if (seen.has(id)) continue;
    seen.add(id);
    let view = running.get(id);
    if (!view) {
      view = orphans.get(id);
      if (view) {
        // Its lines came first: they follow the tail of the log.
        orphans.delete(id);
        view.seed(build.monitor, view.takePending());
      } else {
        view = new BuildView(id);
        view.seed(build.monitor);
      }
      running.set(id, view);
      view.shown = true;
      if (view.pending.length > 0) schedule(view);
    } else if (reseed) {
      // After a reconnection the console has a gap: start it over.
      view.seed(build.monitor);
    }
    view.update(build);
    views.push(view);
  }
  for (const [id, view] of running) {
    if (!seen.has(id)) {
      view.remove();
      running.delete(id);
    }
  }
  views.sort(buildOrder);
  // Move only what is out of place: a moved console would lose its scroll.
  const list = page.runningList;
  let cursor = list.firstElementChild;
  for (const view of views) {
    if (cursor === view.root) {
      cursor = cursor.nextElementSibling;
    } else {
      list.insertBefore(view.root, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    if (!cursor.classList.contains('empty')) cursor.remove();
    cursor = next;
  }
  showIdle();
  page.runningCount.textContent = views.length ? '(' + views.length + ')' : '';
}

/** `update`: a batch of log lines of one build (see the protocol above). */
function onUpdate(payload) {
  if (!payload || typeof payload !== 'object') return;
  const id = str(payload.id);
  let view = running.get(id);
  if (!view) {
    view = orphans.get(id);
    if (!view) {
      if (orphans.size >= MAX_ORPHANS) {
        const oldest = orphans.keys().next().value;
        orphans.get(oldest).remove();
        orphans.delete(oldest);
      }
      view = new BuildView(id);
      orphans.set(id, view);
    }
  }
  view.receive(payload);
}

/** `lagged`: lines of a build that the server could not read back for this page. */
function onLagged(payload) {
  if (!payload || typeof payload !== 'object') return;
  const skipped = wholeNumber(Number(payload.skipped)) || 0;
  const text = '… this page fell behind: up to ' + skipped.toLocaleString() +
    ' lines may be missing here;';
  const view = running.get(str(payload.id));
  if (view) {
    view.notice(text);
    return;
  }
  if (payload.id === undefined) {
    // An older server: the count covers every build's events.
    for (const each of running.values()) each.notice(text);
  }
}

/** One finished build, collapsed. */
function historyEntry(build, open) {
  const id = str(build.id);
  const status = str(build.status);
  const entry = el('details', 'entry ' + statusClass(status));
  entry.dataset.buildId = id;
  if (open.has(id)) entry.open = true;

  const summary = el('summary');
  summary.appendChild(badge(status));
  summary.appendChild(el('span', 'name', str(build.name) || id));
  if (build.tag) summary.appendChild(el('span', 'tag', str(build.tag)));
  const first = Array.isArray(build.commits) && build.commits[0] && typeof build.commits[0] === 'object'
    ? firstLine(build.commits[0].message) : '';
  summary.appendChild(el('span', 'summary-message', first));
  const started = seconds(build.started);
  const ended = seconds(build.ended);
  const duration = started !== null && ended !== null ? formatDuration(ended - started) : '';
  summary.appendChild(el('span', 'duration', duration));
  const when = el('time', 'when', ended !== null ? formatTime(ended) : '');
  if (ended !== null) when.dateTime = new Date(ended * 1000).toISOString();
  summary.appendChild(when);
  entry.appendChild(summary);

  const body = el('div', 'entry-body');
  body.appendChild(details([
    ['Started', started !== null ? formatTime(started) : ''],
    ['Ended', ended !== null ? formatTime(ended) : ''],
    ['Duration', duration],
    ['Base image', str(build.baseimage)],
    ['Artifact', artifactLink(build)],
    ['Error', str(build.error)],
  ]));
  body.appendChild(commitList(build.commits));
  body.appendChild(link(reportUrl(id), 'Full log', 'full-log'));
  entry.appendChild(body);
  return entry;
}

/** `history`: the history becomes exactly these builds. */
function onHistory(payload) {
  const builds = Array.isArray(payload) ? payload : [];
  const open = new Set();
  for (const entry of page.historyList.querySelectorAll('details[open]')) {
    open.add(entry.dataset.buildId);
  }
  const fragment = document.createDocumentFragment();
  for (const build of builds) {
    if (build && typeof build === 'object') fragment.appendChild(historyEntry(build, open));
  }
  if (!fragment.firstChild) fragment.appendChild(el('p', 'empty', 'No finished build yet.'));
  page.historyList.replaceChildren(fragment);
}

// ---------------------------------------------------------------------------
// The websocket.

let socket = null;
let retry = null;
let reseedNext = false;

function socketUrl() {
  return (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/buildio';
}

function setConnected(connected) {
  page.banner.hidden = connected;
  document.body.classList.toggle('offline', !connected);
  page.connection.textContent = connected ? 'live' : 'offline';
  page.connection.className = 'connection ' + (connected ? 'online' : 'offline');
}

function disconnected() {
  setConnected(false);
  if (retry === null) retry = setTimeout(connect, RECONNECT_MS);
}

/**
 * Handles one websocket message. A global on purpose: the browser tests
 * give it made-up frames (gaps, repeats, pieces), and the page benchmark
 * wraps it (and renderFrame) to time the page's own work.
 */
function onFrame(data) {
  if (typeof data !== 'string') return;
  let frame;
  try {
    frame = JSON.parse(data);
  } catch (_) {
    return;
  }
  if (!frame || typeof frame !== 'object') return;
  switch (frame.event) {
    case 'update':
      onUpdate(frame.payload);
      break;
    case 'status':
      onStatus(frame.payload, reseedNext);
      reseedNext = false;
      break;
    case 'history':
      onHistory(frame.payload);
      break;
    case 'lagged':
      onLagged(frame.payload);
      break;
    case 'server':
      onServer(frame.payload);
      break;
    default:
      break;
  }
}

function connect() {
  retry = null;
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (_) {
    disconnected();
    return;
  }
  socket = ws;
  ws.addEventListener('open', () => {
    if (ws !== socket) return;
    setConnected(true);
    // The snapshot that follows rebuilds everything; consoles start over
    // from it since lines may have been missed while disconnected.
    reseedNext = true;
    statusSeen = false;
    for (const view of orphans.values()) view.remove();
    orphans.clear();
    for (const view of running.values()) view.restartSequence();
  });
  ws.addEventListener('message', (event) => {
    if (ws === socket) onFrame(event.data);
  });
  ws.addEventListener('close', () => {
    if (ws !== socket) return;
    socket = null;
    disconnected();
  });
}

function start() {
  page.running = document.getElementById('running');
  page.runningList = document.getElementById('running-list');
  page.runningCount = document.getElementById('running-count');
  page.history = document.getElementById('history');
  page.historyList = document.getElementById('history-list');
  page.banner = document.getElementById('disconnected');
  page.connection = document.getElementById('connection');
  page.tracking = document.getElementById('tracking');
  setInterval(() => {
    for (const view of running.values()) view.tick();
  }, 1000);
  connect();
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}
