// Keyboard for the filter-labeling page (installed once per browser tab by pages_filter.py).
// A key decides only the image on screen, only after it has been painted for at least the
// configured dwell, once per image; held-key repeats are ignored; Caps Lock does not matter.
// A refused press is shown, never silent. "?" lists the keys. The click goes to the page's own
// Yes/No/Skip buttons, which carry the shown task's id to the store (bound when drawn).
(function () {
  const cfg = /*CFG*/{}/*CFG*/;  // filled in by pages_filter.py
  const w = window;
  if (w.__rcFilterKeys) { w.__rcFilterKeys.configure(cfg); return; }
  const state = { dwell: 200, shownSrc: "", paintedAt: 0, decidedSrc: null, keys: {} };
  const IMG = ".st-key-filter_image img";
  function configure(c) {
    state.dwell = Number(c.dwell_ms ?? state.dwell);
    state.keys = c.keys || state.keys;  // {"y": "filter_yes", ...}: key -> button container key
    state.undo = c.undo || state.undo;
  }
  configure(cfg);
  function flash(text) {
    let el = document.getElementById("rc-filter-flash");
    if (!el) {
      el = document.createElement("div");
      el.id = "rc-filter-flash";
      el.setAttribute("role", "status");
      el.style.cssText = "position:fixed;left:50%;bottom:24px;transform:translateX(-50%);z-index:99999;" +
        "background:#7a2e0e;color:#fff;padding:8px 14px;border-radius:6px;font:14px sans-serif;";
      document.body.appendChild(el);
    }
    el.textContent = text;
    el.style.display = "block";
    clearTimeout(el._t);
    el._t = setTimeout(() => { el.style.display = "none"; }, 1200);
    w.__rcFilterKeys.refused += 1;
  }
  function overlay() {
    let el = document.getElementById("rc-filter-help");
    if (el) { el.remove(); return; }
    el = document.createElement("div");
    el.id = "rc-filter-help";
    el.style.cssText = "position:fixed;top:15%;left:50%;transform:translateX(-50%);z-index:99999;" +
      "background:#fff;color:#111;border:1px solid #999;border-radius:8px;padding:16px 22px;" +
      "font:15px sans-serif;box-shadow:0 4px 20px rgba(0,0,0,.25)";
    // Built with DOM calls: Streamlit's sanitiser drops a script whose text holds a tag.
    for (const line of ["Keys", "Y  Yes  ·  N  No  ·  S  Skip", "U  Undo the last decision",
                        "Z  Zoom the image (again to fit)", "?  Show / hide this list"]) {
      const row = document.createElement("div");
      row.textContent = line;
      row.style.whiteSpace = "pre";
      if (line === "Keys") row.style.fontWeight = "bold";
      el.appendChild(row);
    }
    el.addEventListener("click", () => el.remove());
    document.body.appendChild(el);
  }
  // Zoom: the image box gets "rc-zoom" (CSS in pages_filter.py: natural size, scrollable); a
  // click on the image or Z toggles it; a new image starts fitted again.
  const BOX = ".st-key-filter_image";
  function zoom() {
    const box = document.querySelector(BOX);
    if (box) box.classList.toggle("rc-zoom");
  }
  document.addEventListener("click", (e) => {
    if (e.target && e.target.closest && e.target.closest(IMG)) zoom();
  }, true);
  // Watch the image: a new picture counts as shown from the first frame after it has loaded.
  function watch() {
    const img = document.querySelector(IMG);
    const src = img && img.complete && img.naturalWidth > 0 ? img.getAttribute("src") || "" : "";
    if (src !== state.shownSrc) {
      if (src && state.shownSrc) document.querySelector(BOX)?.classList.remove("rc-zoom");
      state.shownSrc = src;
      state.paintedAt = src ? performance.now() : 0;
    }
    requestAnimationFrame(watch);
  }
  requestAnimationFrame(watch);
  // A rerun that ends with the same picture still on screen (the store refused the decision, or
  // the next image has identical bytes): it may be answered again, after a fresh dwell.
  let running = false;
  new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const now = app && app.getAttribute("data-test-script-state") === "running";
    if (running && !now && state.decidedSrc === state.shownSrc) {
      state.decidedSrc = null;
      state.paintedAt = performance.now();
    }
    running = now;
  }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ["data-test-script-state"] });
  function click(containerKey) {
    const btn = document.querySelector(`.st-key-${containerKey} button`);
    if (btn && !btn.disabled) { btn.click(); return true; }
    return false;
  }
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const key = (e.key || "").toLowerCase();
    if (key === "?") { overlay(); e.preventDefault(); return; }
    if (key === "z") { zoom(); e.preventDefault(); return; }
    const target = key === "u" ? state.undo : state.keys[key];
    if (!target) return;
    e.preventDefault();
    e.stopPropagation();
    if (e.repeat) { flash("Held key ignored: press once per image."); return; }
    if (key === "u") { click(target); state.decidedSrc = null; return; }
    if (!state.shownSrc) { flash("No image on screen yet."); return; }
    if (state.decidedSrc === state.shownSrc) { flash("Already answered: wait for the next image."); return; }
    const shownFor = performance.now() - state.paintedAt;
    if (shownFor < state.dwell) { flash(`Too fast (${Math.round(shownFor)} ms): look at the image first.`); return; }
    if (click(target)) { state.decidedSrc = state.shownSrc; w.__rcFilterKeys.decided += 1; }
  }
  document.addEventListener("keydown", onKey, true);
  w.__rcFilterKeys = { configure, refused: 0, decided: 0 };
})();
