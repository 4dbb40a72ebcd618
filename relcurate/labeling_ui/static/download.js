// A download handed over the page's websocket (labeling_ui/download.py explains why). The first
// render with a token carries the bytes: they become a blob: URL, saved at once and kept (on
// window, so reruns keep it) behind a "Save again" link. Later renders carry only the token.
const W = window;
const BLOBS = W.__rcDownloads || (W.__rcDownloads = new Map());  // token -> object URL

function fromBase64(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

export default function (component) {
  const d = component.data || {};
  const parent = component.parentElement;
  let url = BLOBS.get(d.token);
  const fresh = !url && d.b64;
  if (fresh) {
    url = URL.createObjectURL(new Blob([fromBase64(d.b64)], { type: d.mime || "application/octet-stream" }));
    BLOBS.set(d.token, url);
  }
  const box = document.createElement("div");
  box.className = "rc-download";
  box.style.cssText = "font-size:0.875rem;margin:0.25rem 0";
  if (url) {
    const a = document.createElement("a");
    a.href = url;
    a.download = d.name || "download";
    a.textContent = `Save ${d.name || "download"} again`;
    a.className = "rc-download-link";
    box.append(a);
    parent.replaceChildren(box);
    if (fresh) a.click();
  } else {
    box.textContent = "The download is gone from this tab (reloaded?): prepare it again.";
    parent.replaceChildren(box);
  }
}
