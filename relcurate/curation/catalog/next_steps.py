"""What is waiting for people, counted for the dashboard's "what to do next" list: open filter
labeling tasks, groups without a caption, captions to review, disputes to adjudicate,
near-duplicate pairs to decide. Which of them a user sees is the UI's role check."""
from __future__ import annotations

from dataclasses import dataclass

from relcurate.curation.groups import captions
from relcurate.curation.ingest.dedup_review import pending_count
from relcurate.curation.labeling import agreement, leases
from relcurate.workspace import Workspace


@dataclass(frozen=True)
class WorkWaiting:
    open_images: int  # filter-labeling images still needing a decision
    uncaptioned_groups: int  # complete/verified groups with no live caption
    captions_to_review: int  # groups whose proposed caption nobody accepted yet
    disputes: int  # images whose annotators disagree
    near_duplicates: int  # recorded pairs nobody decided


def work_waiting(ws: Workspace) -> WorkWaiting:
    return WorkWaiting(
        open_images=int(leases.queue_sizes(ws.engine)["open_images"]),
        uncaptioned_groups=len(captions.group_queue(ws, "uncaptioned")),
        captions_to_review=len(captions.group_queue(ws, "to review")),
        disputes=agreement.count_disputes(ws.engine),
        near_duplicates=pending_count(ws),
    )
