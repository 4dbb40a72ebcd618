"""Quarantine report: every quarantined image and rejected source record, with the reason."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate.curation.catalog.redact import redact_location, redact_paths_in
from relcurate.curation.ingest.store_writes import quarantine_report
from relcurate.labeling_ui.registry import PageContext


def render(ctx: PageContext) -> None:
    st.title("Quarantine")
    rows = quarantine_report(ctx.ws)
    if not rows:
        st.success("Nothing is quarantined.")
        return
    table = pd.DataFrame(rows, columns=["where", "reason", "detail"])
    if not ctx.can("curate"):  # annotators and reviewers see file names, not the server's folders
        table["where"] = table["where"].map(redact_location)
        table["detail"] = table["detail"].map(redact_paths_in)
    reasons = sorted(table["reason"].unique())
    chosen = st.multiselect("Reason", reasons, key="quarantine_reasons", placeholder="all reasons")
    if chosen:
        table = table[table["reason"].isin(chosen)]
    st.caption(f"{len(table)} of {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    # st.dataframe draws cells as plain text on a canvas: file names and details are never markup.
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"where": st.column_config.TextColumn(width="large"),
                                "detail": st.column_config.TextColumn(width="large")})
