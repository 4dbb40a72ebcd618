// The filter page's image view and keyboard (an st.components.v2 module; labeling_ui/prefetch.py
// mounts it and explains the protocol). Streamlit calls the default export on every new `data`;
// the state below lives on `window`, so it outlasts those calls and page switches in this tab.
//
// A key (Y/N/S, Caps Lock or not) or a click on the page's Yes/No/Skip buttons decides only the
// image on screen, only after it has been painted for the dwell, once: the next prefetched image
// is swapped in at once (no server round trip) and the decision is queued; held-key repeats are
// ignored. Refused presses are shown, never silent. U undoes the last decision (queued behind the
// decisions before it), Z zooms, ? lists the keys. Every user string is written with textContent.
const W = window;
const S = W.__rcPrefetch || (W.__rcPrefetch = {
  tab: (W.crypto && W.crypto.randomUUID) ? W.crypto.randomUUID() : String(Math.random()).slice(2),
  seq: 0, outbox: [], ack: 0, decided: new Set(), imgs: new Map(), items: [], current: null,
  paintedAt: 0, token: 0, frontRev: null, root: null, failures: [], seenRefused: new Set(),
  undoing: 0, lastSend: 0, attempt: 0, setState: null, data: {}, dwell: 200, installed: false,
});
const API = W.__rcFilterKeys || (W.__rcFilterKeys = { refused: 0, decided: 0, paints: 0, failed: 0 });
const ANSWERS = { y: "yes", n: "no", s: "skip" };
const BUTTONS = { filter_yes: "yes", filter_no: "no", filter_skip: "skip" };
const BOX = ".st-key-filter_image";

function el(tag, css, text) {
  const e = document.createElement(tag);
  if (css) e.style.cssText = css;
  if (text !== undefined) e.textContent = text;
  return e;
}

function mount(parent) {
  if (S.root && S.root.parentNode === parent) return;
  S.root = el("div", "");
  S.root.className = "rc-pf";
  S.stage = el("div", "min-height:4rem");
  S.alt = el("div", "font-size:0.875rem;opacity:0.6;margin-top:0.25rem");
  S.status = el("div", "font-size:0.875rem;margin-top:0.25rem");
  S.status.setAttribute("role", "status");
  S.root.append(S.stage, S.alt, S.status);
  parent.appendChild(S.root);
  S.current = null;  // a new mount (page visited again) shows the server's first task
  S.frontRev = null;
}

function flash(text) {
  let f = document.getElementById("rc-filter-flash");
  if (!f) {
    f = el("div", "position:fixed;left:50%;bottom:24px;transform:translateX(-50%);z-index:99999;" +
      "background:#7a2e0e;color:#fff;padding:8px 14px;border-radius:6px;font:14px sans-serif;");
    f.id = "rc-filter-flash";
    f.setAttribute("role", "status");
    document.body.appendChild(f);
  }
  f.textContent = text;
  f.style.display = "block";
  clearTimeout(f._t);
  f._t = setTimeout(() => { f.style.display = "none"; }, 1200);
  API.refused += 1;
}

function overlay() {
  let o = document.getElementById("rc-filter-help");
  if (o) { o.remove(); return; }
  o = el("div", "position:fixed;top:15%;left:50%;transform:translateX(-50%);z-index:99999;" +
    "background:#fff;color:#111;border:1px solid #999;border-radius:8px;padding:16px 22px;" +
    "font:15px sans-serif;box-shadow:0 4px 20px rgba(0,0,0,.25)");
  o.id = "rc-filter-help";
  for (const line of ["Keys", "Y  Yes  ·  N  No  ·  S  Skip", "U  Undo the last decision",
                      "Z  Zoom the image (again to fit)", "?  Show / hide this list"]) {
    const row = el("div", "white-space:pre", line);
    if (line === "Keys") row.style.fontWeight = "bold";
    o.appendChild(row);
  }
  o.addEventListener("click", () => o.remove());
  document.body.appendChild(o);
}

function zoom() {
  document.querySelector(BOX)?.classList.toggle("rc-zoom");
}

// A decoded <img> per prefetched task, made as soon as its bytes arrive (not in the page yet).
function keep(item) {
  const have = S.imgs.get(item.rid);
  if (have && (have.v === item.v || !item.src)) return;
  if (!item.src) return;
  const img = new Image();
  img.alt = item.alt || "";
  img.dataset.imageId = String(item.image_id);  // which task is on screen (tests, benchmarks)
  if (item.w && item.h) { img.width = item.w; img.height = item.h; }
  img.style.cssText = "display:block;border-radius:0.5rem;width:100%;height:auto;";
  const entry = { v: item.v, img, ok: false, broken: false };
  img.src = item.src;
  entry.ready = img.decode().then(() => { entry.ok = true; }, () => { entry.broken = true; });
  S.imgs.set(item.rid, entry);
}

function text(msg) { return el("div", "padding:1.5rem 0;opacity:0.7", msg); }

function painted(token) {
  requestAnimationFrame(() => {
    if (token !== S.token) return;
    S.paintedAt = performance.now();
    API.paints += 1;
    API.lastPaint = S.paintedAt;
  });
}

function show(item) {
  const token = ++S.token;
  S.current = item || null;
  S.paintedAt = 0;
  document.querySelector(BOX)?.classList.remove("rc-zoom");
  const lines = [];
  if (item && item.alt) lines.push(`Alt-text: ${item.alt}`);
  if (item && item.origin) lines.push(`Queued by ${item.origin}`);
  S.alt.textContent = lines.join(" \u00b7 ");
  if (!item) {
    S.stage.replaceChildren(S.data.empty ? text("") : text("Loading the next image…"));
    return;
  }
  const entry = S.imgs.get(item.rid);
  if (item.missing || (entry && entry.broken)) {
    S.stage.replaceChildren(text("This image cannot be shown; press Skip."));
    painted(token);
    return;
  }
  if (!entry) { S.stage.replaceChildren(text("Loading the next image…")); return; }
  if (!entry.ok) {
    S.stage.replaceChildren(text("Loading the next image…"));
    entry.ready.then(() => { if (token === S.token) show(item); });
    return;
  }
  S.stage.replaceChildren(entry.img);
  painted(token);
}

function nextUndecided() {
  return S.items.find((it) => !S.decided.has(it.rid) && it.rid !== S.current?.rid) || null;
}

function send() {
  if (!S.setState) return;
  S.attempt += 1;
  S.lastSend = performance.now();
  S.setState("msg", {
    tab: S.tab, attempt: S.attempt, outbox: S.outbox,
    have: [...S.imgs].map(([rid, e]) => `${rid}|${e.v}`), showing: S.current ? S.current.rid : null,
  });
}

function drawStatus() {
  const rows = [];
  for (const f of S.failures) {
    const row = el("div", "background:#fdecea;color:#7a1c1c;border-radius:4px;padding:4px 8px;margin-top:4px",
      `Not saved — image #${f.image_id}: ${f.message}`);
    row.className = "rc-pf-failed";
    const x = el("button", "margin-left:8px;border:0;background:none;cursor:pointer", "×");
    x.addEventListener("click", () => { S.failures = S.failures.filter((g) => g !== f); drawStatus(); });
    row.appendChild(x);
    rows.push(row);
  }
  if (S.data.error && S.outbox.length) {
    rows.push(el("div", "color:#7a2e0e", `Saving failed (${S.data.error}); retrying ${S.outbox.length} decision(s).`));
  } else if (S.outbox.length && performance.now() - S.lastSend > 1000) {
    rows.push(el("div", "opacity:0.7", `Saving ${S.outbox.length} decision(s)…`));
  }
  S.status.replaceChildren(...rows);
}

function update(data) {
  S.data = data || {};
  S.dwell = Number(S.data.dwell_ms ?? S.dwell);
  if (S.data.tab === S.tab) {
    S.ack = Math.max(S.ack, S.data.ack || 0);
    S.outbox = S.outbox.filter((o) => o.seq > S.ack);
    if (S.undoing && S.ack >= S.undoing) S.undoing = 0;
    for (const r of S.data.refused || []) {
      if (S.seenRefused.has(r.seq)) continue;
      S.seenRefused.add(r.seq);
      S.failures.push(r);
      API.failed += 1;
    }
  }
  const items = S.data.items || [];
  let missing = false;
  for (const it of items) {
    keep(it);
    if (!it.missing && !S.imgs.has(it.rid)) missing = true;  // bytes withheld but not held here
  }
  const live = new Set(items.map((it) => it.rid));
  for (const rid of [...S.imgs.keys()]) if (!live.has(rid) && rid !== S.current?.rid) S.imgs.delete(rid);
  if (S.decided.size > 500) S.decided = new Set([...S.decided].slice(-200));
  S.items = items;
  const cur = S.current && items.find((it) => it.rid === S.current.rid);
  if (S.data.front_rev !== S.frontRev || !cur) {
    S.frontRev = S.data.front_rev;
    const first = items.find((it) => !S.decided.has(it.rid)) || null;
    if (!first || !cur || first.rid !== cur.rid || first.v !== S.current.v) show(first);
  } else if (cur.v !== S.current.v) {
    show(cur);  // full resolution on / off
  }
  drawStatus();
  if (missing) send();  // ask again for what this tab no longer holds
}

function decide(answer) {
  if (S.undoing) { flash("Undoing the last decision: wait a moment."); return; }
  const it = S.current;
  if (!it || !S.paintedAt) { flash(S.data.empty ? "Nothing left to label." : "No image on screen yet."); return; }
  const shownFor = performance.now() - S.paintedAt;
  if (shownFor < S.dwell) { flash(`Too fast (${Math.round(shownFor)} ms): look at the image first.`); return; }
  S.decided.add(it.rid);
  S.seq += 1;
  S.outbox.push({ seq: S.seq, op: "decide", rid: it.rid, image_id: it.image_id, answer, lead_ms: Math.round(shownFor) });
  API.decided += 1;
  show(nextUndecided());
  send();
}

function undo() {
  if (S.undoing) { flash("Undoing the last decision: wait a moment."); return; }
  if (!S.data.can_undo && !S.outbox.some((o) => o.op === "decide")) { flash("Nothing to undo."); return; }
  S.seq += 1;
  S.outbox.push({ seq: S.seq, op: "undo" });
  S.undoing = S.seq;
  send();
}

function onPage() { return S.root && S.root.isConnected; }

function onKey(e) {
  if (!onPage() || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  const key = (e.key || "").toLowerCase();
  if (key === "?") { overlay(); e.preventDefault(); return; }
  if (key === "z") { zoom(); e.preventDefault(); return; }
  if (key !== "u" && !ANSWERS[key]) return;
  e.preventDefault();
  e.stopPropagation();
  if (e.repeat) { flash("Held key ignored: press once per image."); return; }
  API.lastKeyAt = e.timeStamp;
  if (key === "u") undo(); else decide(ANSWERS[key]);
}

// The page's Yes/No/Skip/Undo buttons decide the same way as the keys (their Streamlit
// callbacks, which decide the server's first task, serve only a page without this script).
function onClick(e) {
  if (!onPage() || !e.target || !e.target.closest) return;
  if (e.target.closest(`${BOX} img`)) { zoom(); return; }
  const box = e.target.closest('[class*="st-key-filter_"]');
  const btn = e.target.closest("button");
  if (!box || !btn) return;
  const name = [...box.classList].map((c) => c.slice(7)).find((c) => c in BUTTONS || c === "filter_undo");
  if (!name) return;
  e.preventDefault();
  e.stopImmediatePropagation();
  if (name === "filter_undo") undo(); else decide(BUTTONS[name]);
}

function install() {
  if (S.installed) return;
  S.installed = true;
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("click", onClick, true);
  // Queued decisions not yet acknowledged go again (a lost message, a reconnect) ...
  setInterval(() => {
    if (onPage() && S.outbox.length && performance.now() - S.lastSend > 3000) send();
    if (onPage()) drawStatus();
  }, 1000);
  // ... and leaving the page with some still queued asks first.
  W.addEventListener("beforeunload", (e) => { if (S.outbox.length) { e.preventDefault(); e.returnValue = ""; } });
}

export default function (component) {
  S.setState = component.setStateValue;
  mount(component.parentElement);
  install();
  update(component.data);
}
