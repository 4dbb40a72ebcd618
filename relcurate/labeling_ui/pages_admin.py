"""User administration (manage_users): list, add, change role, disable/enable, reset password.

Every change goes through relcurate.accounts; `auth.admin_change_problem` keeps at least one
active admin. Results are shown as a one-shot flash after a rerun, so the table is current.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from relcurate import accounts
from relcurate.db.models import Role
from relcurate.labeling_ui.auth import admin_change_problem
from relcurate.labeling_ui.escaping import escape_md
from relcurate.labeling_ui.registry import PageContext
from relcurate.labeling_ui.widgets import set_flash, show_flash

ROLES = [r.value for r in Role]
FLASH_KEY = "admin_flash"


def _done(message: str) -> None:
    set_flash(FLASH_KEY, message)  # raw text: show_flash escapes it
    st.rerun()


def users_table(users: list) -> pd.DataFrame:
    return pd.DataFrame(
        [{"username": u.username, "role": str(u.role), "active": bool(u.active),
          "created": u.created_at.strftime("%Y-%m-%d %H:%M")} for u in users],
        columns=["username", "role", "active", "created"],
    )


def _add_user(ctx: PageContext) -> None:
    with st.form("admin_add_user", clear_on_submit=True):
        st.markdown("**Add a user**")
        username = st.text_input("Username", key="admin_new_username")
        role = st.selectbox("Role", ROLES, key="admin_new_role")
        password = st.text_input("Password (at least 8 characters)", type="password", key="admin_new_password")
        again = st.text_input("Repeat password", type="password", key="admin_new_password2")
        if not st.form_submit_button("Add user", type="primary"):
            return
    if password != again:
        st.error("The passwords differ.")
        return
    try:
        accounts.create_user(ctx.ws.engine, username, password, role)
    except accounts.AccountError as exc:
        st.error(escape_md(exc))
        return
    _done(f"Added {username.strip()} as {role}.")


def _change_user(ctx: PageContext, users: list) -> None:
    names = [u.username for u in users]
    with st.container(border=True):
        st.markdown("**Change a user**")
        target = st.selectbox("User", names, key="admin_target")
        user = next(u for u in users if u.username == target)
        c1, c2 = st.columns(2)
        role = c1.selectbox("Role", ROLES, index=ROLES.index(str(user.role)), key=f"admin_role_{user.id}")
        active = c2.toggle("Active", value=bool(user.active), key=f"admin_active_{user.id}")
        if st.button("Apply", key="admin_apply"):
            problem = admin_change_problem(users, target, role=role, active=active, acting=ctx.user.username)
            if problem:
                st.error(escape_md(problem))
            elif role == str(user.role) and active == bool(user.active):
                st.info("Nothing to change.")
            else:
                if role != str(user.role):
                    accounts.set_role(ctx.ws.engine, target, role)
                if active != bool(user.active):
                    accounts.set_active(ctx.ws.engine, target, active)
                _done(f"Updated {target}: role {role}, {'active' if active else 'disabled'}.")

    with st.form("admin_reset_password", clear_on_submit=True):
        st.markdown(f"**Reset the password of** {escape_md(target)}")
        password = st.text_input("New password", type="password", key="admin_reset_password")
        if st.form_submit_button("Set password"):
            try:
                accounts.set_password(ctx.ws.engine, target, password)
            except accounts.AccountError as exc:
                st.error(escape_md(exc))
            else:
                _done(f"Password of {target} changed.")


def render(ctx: PageContext) -> None:
    st.title("Users")
    show_flash(FLASH_KEY)
    users = accounts.list_users(ctx.ws.engine)
    st.dataframe(users_table(users), hide_index=True)
    left, right = st.columns(2)
    with left:
        _add_user(ctx)
    with right:
        if users:
            _change_user(ctx, users)
