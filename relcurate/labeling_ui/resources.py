"""Process-wide objects shared by all sessions, cached on the workspace path.

`st.cache_resource` is global to the process (AppTest shares it across tests too), so every
cached function takes the resolved workspace root as its key.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from relcurate.labeling_ui.auth import LoginThrottle
from relcurate.labeling_ui.escaping import escape_md
from relcurate.workspace import Workspace, WorkspaceError

WORKSPACE_ENV = "RELCURATE_WORKSPACE"


@st.cache_resource(show_spinner=False)
def workspace_at(root: str) -> Workspace:
    ws = Workspace.open(root)
    ws.engine  # noqa: B018 - create the pool once, not on the first page that needs it
    return ws


@st.cache_resource(show_spinner=False)
def login_throttle(root: str) -> LoginThrottle:
    return LoginThrottle()


def workspace_root() -> str:
    return str(Path(os.environ.get(WORKSPACE_ENV) or ".").resolve())


def workspace_or_stop() -> Workspace:
    """The workspace named by RELCURATE_WORKSPACE (default: the current folder), or an error page."""
    try:
        return workspace_at(workspace_root())
    except WorkspaceError as exc:
        st.error(f"Cannot open the workspace: {escape_md(exc)}")
        st.caption(f"Set {WORKSPACE_ENV} or start the app with `relcurate serve --workspace PATH`.")
        st.stop()
        raise  # unreachable: st.stop() raises
