"""The one list of app pages and the one place where roles gate them.

A page is a module with ``render(ctx: PageContext) -> None``. To add one, write the module and add
a `PageSpec` line to `PAGES`; the app lists it only for roles that `accounts.can(role, action)`,
and `guarded()` refuses to render it for anyone else even if it were reached some other way.
Targets are imported lazily, so a page's heavy imports cost nothing until it is opened.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from relcurate import accounts
from relcurate.labeling_ui.auth import SessionUser
from relcurate.workspace import Workspace


@dataclass(frozen=True)
class PageContext:
    """What every page gets: the workspace and the signed-in user (role already fresh from the DB)."""

    ws: Workspace
    user: SessionUser

    def can(self, action: str) -> bool:
        return accounts.can(self.user.role, action)


@dataclass(frozen=True)
class PageSpec:
    url_path: str  # unique, also the page's URL (/browse)
    title: str
    icon: str  # emoji or ":material/name:"
    target: str  # "package.module:function", called with a PageContext
    action: str  # a key of accounts.PERMISSIONS needed to see and open the page
    section: str = "Workspace"  # sidebar group

    def load(self) -> Callable[[PageContext], None]:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func or "render")


_UI = "relcurate.labeling_ui"

# Order matters: the first page a role may use is its landing page.
PAGES: list[PageSpec] = [
    PageSpec("dashboard", "Dashboard", ":material/dashboard:", f"{_UI}.pages_dashboard:render", "view_dashboard"),
    PageSpec("browse", "Browse images", ":material/photo_library:", f"{_UI}.pages_browse:render", "view_dashboard"),
    PageSpec("quarantine", "Quarantine", ":material/report:", f"{_UI}.pages_quarantine:render", "view_dashboard"),
    PageSpec("groups", "Seed groups", ":material/workspaces:", f"{_UI}.pages_groups:render", "curate", "Curation"),
    PageSpec("duplicates", "Near-duplicates", ":material/content_copy:", f"{_UI}.pages_duplicates:render", "curate",
             "Curation"),
    PageSpec("review", "Caption review", ":material/rate_review:", f"{_UI}.pages_review:render", "review", "Curation"),
    PageSpec("export", "Export", ":material/download:", f"{_UI}.pages_export:render", "export", "Curation"),
    PageSpec("filter", "Filter labeling", ":material/rule:", f"{_UI}.pages_filter:render", "label", "Labeling"),
    PageSpec("ab-study", "A/B study", ":material/compare:", f"{_UI}.pages_ab_study:render", "label", "Labeling"),
    PageSpec("adjudicate", "Adjudication", ":material/gavel:", f"{_UI}.pages_adjudicate:render", "adjudicate", "Labeling"),
    PageSpec("eval-results", "Evaluation results", ":material/leaderboard:", f"{_UI}.pages_eval_results:render",
             "view_dashboard", "Evaluation"),
    PageSpec("similarity-space", "Similarity space", ":material/scatter_plot:", f"{_UI}.pages_eval_space:render",
             "curate", "Evaluation"),
    PageSpec("mining", "Relationally close, visually far", ":material/join_inner:", f"{_UI}.pages_eval_mining:render",
             "curate", "Evaluation"),
    PageSpec("users", "Users", ":material/manage_accounts:", f"{_UI}.pages_admin:render", "manage_users", "Admin"),
    PageSpec("label-setup", "Labeling setup", ":material/tune:", f"{_UI}.pages_label_admin:render", "manage_users", "Admin"),
    PageSpec("active-learning", "Active learning", ":material/model_training:", f"{_UI}.pages_loop:render", "manage_users",
             "Admin"),
]


def validate(pages: list[PageSpec] = PAGES) -> None:
    """Fail fast on a registry mistake (unknown action, duplicate URL)."""
    seen: set[str] = set()
    for p in pages:
        if p.action not in accounts.PERMISSIONS:
            raise ValueError(f"page {p.url_path!r}: unknown action {p.action!r}")
        if p.url_path in seen or not p.url_path or "/" in p.url_path:
            raise ValueError(f"page url_path {p.url_path!r} is empty, nested or duplicated")
        seen.add(p.url_path)


def pages_for(role: str, pages: list[PageSpec] = PAGES) -> list[PageSpec]:
    return [p for p in pages if accounts.can(role, p.action)]


def guarded(spec: PageSpec, ctx: PageContext, refuse: Callable[[str], object]) -> Callable[[], None]:
    """The page function Streamlit runs: checks the role again, then renders."""

    def page() -> None:
        if not ctx.can(spec.action):
            refuse("You do not have access to this page.")
            return
        spec.load()(ctx)

    page.__name__ = f"page_{spec.url_path}"
    return page


validate()
