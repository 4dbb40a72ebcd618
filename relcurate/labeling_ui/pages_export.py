"""Export (curators and admins): choose a format, its split settings and filters, see the split
preview and its warnings, queue the export as a job (the worker writes it; nothing long runs in
this request), follow its progress, and for a finished one read its manifest, its workspace path
and download it as a zip (built only when a curator or admin clicks, checked again then; the bytes
go over the signed-in session's websocket, never through Streamlit's unauthenticated /media/
endpoint: labeling_ui/download.py)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate import accounts
from relcurate.db import jobs as job_store
from relcurate.exports.archive import manifest_for_display, zip_export
from relcurate.exports.common import ExportError
from relcurate.exports.params import FORMATS, ExportParamsError, default_weights, parse_export_params, suggest_name
from relcurate.exports.preview import preview_export
from relcurate.jobs.export_job import KIND, enqueue_export
from relcurate.labeling_ui import download
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import set_flash, show_flash

K_FLASH = "exp_flash"
K_NAME, K_SUGGESTED = "exp_name", "exp_name_suggested"
# The settings widgets' keys (the split weights' key also names the format: "exp_splits_<fmt>_<dataset>").
_SETTING_KEYS = ("exp_format", K_NAME, "exp_per", "exp_dataset", "exp_caption_source", "exp_images",
                 "exp_include_pending", "exp_url_link", "exp_embed", "exp_exclude", "exp_overwrite", "exp_seed")
LIVE = ("queued", "running")
MAX_DOWNLOAD_BYTES = download.MAX_BYTES  # the zip travels inline over the websocket; bigger: use the path
REFRESH_S = 2.0
FORMAT_HELP = {
    "relsim": "relsim training JSONL + images/<image_hash>.png (the reference trainer's layout)",
    "seed-groups": "seed_group.json (reference layout) + seed_groups.jsonl",
    "filter-sft": "chat JSONL for the Qwen2.5-VL filter (image -> Yes/No consensus label)",
    "captioner-sft": "chat JSONL for the captioner (member image(s) -> accepted caption)",
    "hf": "Hugging Face DatasetDict (save_to_disk) + parquet shards",
}
CAPTION_SOURCES = ("both", "group", "image")


def _spec(weights: dict[str, float] | None) -> str:
    return ",".join(f"{k}={v:g}" for k, v in (weights or {}).items())


def _name_field(ctx: PageContext, fmt: str) -> None:
    """Keep the suggested folder name in step with the format (and past folders written meanwhile);
    a name the user typed stays."""
    current, suggested = st.session_state.get(K_NAME), st.session_state.get(K_SUGGESTED)
    if current is None or current == suggested:
        fresh = suggest_name(ctx.ws, fmt)
        st.session_state[K_NAME] = st.session_state[K_SUGGESTED] = fresh
    st.text_input("Folder name under exports/", key=K_NAME, max_chars=64,
                  help="Letters, digits, '.', '_' and '-'; the export is written to <workspace>/exports/<name>.")


def _options(fmt: str) -> dict:
    """The format's settings as widgets; returns them as export params."""
    p: dict = {}
    c = st.columns(3)
    if fmt in ("relsim", "hf", "captioner-sft"):
        if fmt == "captioner-sft":
            p["per"] = c[0].selectbox("Rows per", ("image", "group"), key="exp_per",
                                      help="image: one image -> caption; group: all members -> its caption")
        if fmt == "hf":
            p["dataset"] = c[0].selectbox("Dataset", ("relsim", "filter"), key="exp_dataset")
        if p.get("per") != "group" and p.get("dataset") != "filter":
            p["caption_source"] = c[1].selectbox("Captions", CAPTION_SOURCES, key="exp_caption_source",
                                                 help="group: each live group's accepted caption for its members; "
                                                      "image: accepted per-image captions; both")
    if fmt in ("relsim", "filter-sft", "captioner-sft"):
        p["images"] = c[2].selectbox("Image files", ("copy", "link", "reference"), key="exp_images",
                                     help="copy; hard-link originals; or reference (no image files: rows point at the store)")
    if fmt in ("relsim", "hf"):
        p["include_pending"] = c[2].checkbox("Include images not downloaded yet", key="exp_include_pending")
    if fmt == "relsim":
        p["url_link"] = c[0].selectbox("url_link of local images", ("empty", "source-uri"), key="exp_url_link")
    if fmt == "hf":
        p["embed"] = c[1].checkbox("Embed image bytes", key="exp_embed", help="Otherwise rows hold paths to the originals.")
    if fmt == "seed-groups":
        p["exclude_statuses"] = c[0].multiselect(
            "Leave out groups that are", ("draft", "complete", "captioned", "verified", "rejected", "split"),
            default=["rejected", "split"], key="exp_exclude")
    return p


def _splits(fmt: str, dataset: str | None) -> dict:
    weights = default_weights(fmt, dataset or "relsim")
    if weights is None:
        return {}
    c = st.columns(2)
    spec = c[0].text_input("Split weights", value=_spec(weights), key=f"exp_splits_{fmt}_{dataset or ''}",
                           help="NAME=WEIGHT,...: e.g. train=9,test=1 (weights, any scale)")
    seed = c[1].number_input("Split seed", min_value=0, value=0, step=1, key="exp_seed")
    st.caption("Splits keep every seed group and every near-duplicate cluster inside one split (no leakage).")
    return {"splits": spec, "seed": int(seed)}


def _settings_snapshot() -> dict:
    """Every export widget's value now. Streamlit hands on_click the args of the run that drew the
    button, so a field edited and the button clicked in one go (no Enter) would queue the old
    settings; comparing this snapshot catches that."""
    return {str(k): st.session_state[k] for k in st.session_state
            if k in _SETTING_KEYS or str(k).startswith("exp_splits_")}


def _enqueue(ctx: PageContext, params: dict, previewed: dict) -> None:
    """on_click: queue the export that was previewed. One live job per folder: a double click
    gets the same job back. Settings changed since the preview queue nothing: the rerun shows
    their preview and the user clicks again."""
    now = _settings_snapshot()  # a key gone since (a widget that run did not draw) is no setting now
    if any(k in now and now[k] != v for k, v in previewed.items()):
        set_flash(K_FLASH, "The settings changed since the preview: check it and click Start export again.", "info")
        return
    try:
        wanted = parse_export_params(params).as_params()
        enq = enqueue_export(ctx.ws, params, requested_by=ctx.user.id)
    except (ExportParamsError, ValueError) as exc:
        set_flash(K_FLASH, exc, "error")
        return
    name = wanted["name"]
    if enq.created:
        set_flash(K_FLASH, f"Export job {enq.job.id} queued: exports/{name}.")
    elif enq.job.params == wanted:
        set_flash(K_FLASH, f"Export job {enq.job.id} into exports/{name} is already {enq.job.state}.", "info")
    else:
        set_flash(K_FLASH, f"Another export into exports/{name} is {enq.job.state} (job {enq.job.id}); "
                           "choose another folder name.", "warning")


def _preview(ctx: PageContext, params: dict) -> bool:
    try:
        pv = preview_export(ctx.ws, params)
    except ExportParamsError as exc:
        st.error(escape_md(exc))
        return False
    if pv.splits is not None:
        st.dataframe(pd.DataFrame([{"split": k, **v} for k, v in pv.splits.items()]), hide_index=True,
                     key="exp_preview")
        st.caption(escape_md(f"{pv.rows} rows in {pv.components} group/near-duplicate components "
                             "(missing files can still drop a few; the manifest has the exact counts)."))
    for w in pv.warnings:
        st.warning(escape_md(w))
    return not pv.exists or bool(params.get("overwrite"))  # an existing folder would only fail the job


def jobs_frame(jobs, names: dict[int, str] | None = None) -> pd.DataFrame:
    names = names or {}
    return pd.DataFrame([{
        "id": j.id, "folder": (j.params or {}).get("name", ""), "format": (j.params or {}).get("format", ""),
        "state": j.state, "progress": float(j.progress), "note": j.progress_note or "",
        "error": (j.error or "").splitlines()[0][:200] if j.error else "",
        "requested by": names.get(j.requested_by, j.requested_by or ""), "created": j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
    } for j in jobs], columns=["id", "folder", "format", "state", "progress", "note", "error", "requested by", "created"])


def _finished(ctx: PageContext, job, expanded: bool) -> None:
    res = job.result or {}
    name = str(res.get("name", ""))
    with st.expander(escape_md(f"exports/{name} · job {job.id} · {res.get('format', '')}"), expanded=expanded):
        try:
            manifest = manifest_for_display(ctx.ws, name)
        except (ExportError, ExportParamsError, OSError) as exc:
            st.warning(escape_md(f"The export folder is not there any more: {exc}"))
            return
        st.caption("Workspace path")
        st.code(str(res.get("path", "")), language=None)
        for w in res.get("warnings") or ():
            st.warning(escape_md(w))
        st.caption(escape_md(f"{res.get('files', 0)} files, {int(res.get('bytes', 0)):,} bytes; "
                             f"manifest #{res.get('manifest_id')}"))
        if int(res.get("bytes", 0)) > MAX_DOWNLOAD_BYTES:
            st.info("Too large to download through the browser; copy the folder from the workspace path.")
        else:
            key = f"exp_dl_{job.id}"
            st.button("Download zip", key=key, icon=":material/download:", on_click=_prepare_zip,
                      args=(ctx, key, name))
            if st.session_state.get(f"{key}_error"):
                st.error(escape_md(st.session_state[f"{key}_error"]))
            download.offer(f"{key}_file", f"{name}.zip")
        st.json(manifest, expanded=1)


def _prepare_zip(ctx: PageContext, key: str, name: str) -> None:
    """on_click: build (or reuse) the zip, the exporter role checked again now, and hand it to
    this tab's download element."""
    st.session_state[f"{key}_error"] = None
    try:
        path = zip_export(ctx.ws, name, user=ctx.user.username)
    except (ExportError, ExportParamsError, PermissionError, OSError) as exc:
        st.session_state[f"{key}_error"] = f"The zip could not be made: {exc}"
        return
    download.request(f"{key}_file", path)


def _jobs_view(ctx: PageContext, was_live: bool) -> None:
    jobs = job_store.list_jobs(ctx.ws.engine, kind=KIND, limit=20)
    live = [j for j in jobs if j.state in LIVE]
    if was_live and not live:
        st.rerun()  # the last one just ended: redraw the page without the timer
    if not jobs:
        st.caption("No exports yet.")
        return
    for j in live:
        st.progress(float(j.progress), text=escape_md(f"job {j.id}: exports/{(j.params or {}).get('name', '')} "
                                                      f"{j.state} {j.progress_note or ''}"))
    names = accounts.usernames_by_id(ctx.ws.engine)
    st.dataframe(jobs_frame(jobs, names), hide_index=True, key="exp_jobs",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
    done = [j for j in jobs if j.state == "done" and j.result]
    for i, j in enumerate(done[:5]):
        _finished(ctx, j, expanded=i == 0)
    for j in [j for j in jobs if j.state == "failed"][:3]:
        with st.expander(escape_md(f"Job {j.id} failed: log")):
            st.code(j.log_tail or "", language=None)


def render(ctx: PageContext) -> None:
    st.title("Export")
    show_flash(K_FLASH)
    fmt = st.selectbox("Format", FORMATS, key="exp_format", format_func=lambda f: f"{f}: {FORMAT_HELP[f]}")
    _name_field(ctx, fmt)
    params = {"format": fmt, "name": st.session_state.get(K_NAME, ""), **_options(fmt)}
    if st.checkbox("Replace the folder if it exists", key="exp_overwrite",
                   help="The old export stays complete until the new one is in place."):
        params["overwrite"] = True
    params.update(_splits(fmt, params.get("dataset")))
    ok = _preview(ctx, params)
    st.button("Start export", key="exp_start", type="primary", on_click=_enqueue,
              args=(ctx, params, _settings_snapshot()), disabled=not ok,
              icon=":material/play_arrow:")
    st.caption("The export runs in the background worker (relcurate worker); this page only queues it.")

    st.subheader("Exports")
    live = any(j.state in LIVE for j in job_store.list_jobs(ctx.ws.engine, kind=KIND, limit=20))
    st.fragment(run_every=REFRESH_S if live else None)(_jobs_view)(ctx, live)
