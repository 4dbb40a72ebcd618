"""The sign-in page, the only page a signed-out visitor can reach."""
from __future__ import annotations

import streamlit as st

from relcurate.labeling_ui import auth
from relcurate.labeling_ui.auth import LoginThrottle
from relcurate.workspace import Workspace


def render(ws: Workspace, throttle: LoginThrottle) -> None:
    st.title("relcurate")
    st.caption("Sign in to curate and label this workspace.")
    notice = auth.pop_notice(st.session_state)
    if notice:
        st.info(notice)
    # clear_on_submit: the password must not linger in the widget state after a failed try.
    with st.form("login", clear_on_submit=True):
        username = st.text_input("Username", key="login_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    result = auth.attempt_login(ws.engine, throttle, username, password)
    if result.user is None:
        st.error(result.error or auth.GENERIC_FAILURE)
        return
    auth.start_session(st.session_state, result.user, engine=ws.engine)
    st.rerun()
