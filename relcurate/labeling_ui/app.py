"""Streamlit entry point: `streamlit run relcurate/labeling_ui/app.py` with RELCURATE_WORKSPACE set
(`relcurate serve` does both).

Signed out, every address renders only the sign-in form (the registry's addresses too, so a
bookmark or a reload shows the form, not "Page not found", and after signing in the same address
shows the page asked for). Signed in, the navigation holds exactly the registry pages the user's
role may use (see registry.py). A reload or a new tab resumes the session from its cookie
(auth.restore_session; the token is checked and revocable server-side, web_sessions.py).
"""
from __future__ import annotations

import streamlit as st

from relcurate.labeling_ui import auth, pages_login, registry, resources, widgets
from relcurate.labeling_ui.escaping import escape_md


def _sidebar(ctx: registry.PageContext) -> None:
    with st.sidebar:
        st.markdown(f"Signed in as **{escape_md(ctx.user.username)}**  \nrole: `{ctx.user.role}`")
        st.button("Log out", key="logout", icon=":material/logout:", on_click=auth.end_session,
                  args=(st.session_state,), kwargs={"engine": ctx.ws.engine, "release_tasks": True})
        if ctx.can("manage_users"):  # server paths are for admins only
            st.caption(f"workspace: {escape_md(ctx.ws.root)}")


def _hand_cookie_to_browser() -> None:
    script = auth.cookie_script(st.session_state, secure=st.context.url.startswith("https:")
                                if st.context.url else False)
    if script:
        st.html(script, unsafe_allow_javascript=True)


def main() -> None:
    _render()
    widgets.forget_drawn_flashes()  # reached only by a run that was not interrupted or rerun


def _render() -> None:
    st.set_page_config(page_title="relcurate", page_icon=":material/collections:", layout="wide")
    ws = resources.workspace_or_stop()
    user = auth.current_user(st.session_state, ws.engine)
    if user is None:
        user = auth.restore_session(st.session_state, ws.engine, st.context.cookies.get(auth.COOKIE_NAME))
    _hand_cookie_to_browser()
    if user is None:
        throttle = resources.login_throttle(str(ws.root))
        render = lambda: pages_login.render(ws, throttle)  # noqa: E731
        login = st.Page(render, title="Sign in", icon=":material/login:", url_path="login", default=True)
        asked = [st.Page(render, title="Sign in", url_path=spec.url_path) for spec in registry.PAGES]
        st.navigation([login, *asked], position="hidden").run()
        return

    ctx = registry.PageContext(ws=ws, user=user)
    sections: dict[str, list] = {}
    for i, spec in enumerate(registry.pages_for(user.role)):
        page = st.Page(registry.guarded(spec, ctx, st.error), title=spec.title, icon=spec.icon,
                       url_path=spec.url_path, default=i == 0)
        sections.setdefault(spec.section, []).append(page)
    if not sections:  # a role with no page at all: nothing to show but the way out
        _sidebar(ctx)
        st.warning("Your role has no pages in this app.")
        return
    nav = st.navigation(sections)
    _sidebar(ctx)
    nav.run()


main()
