"""One typed table per concept. Status/kind columns are plain strings checked against StrEnums in
Python (no database ENUM types: they make PostgreSQL migrations painful and add nothing here).

Timestamps are timezone-aware UTC (sqlmodel's UTCDateTime refuses naive ones).
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, UniqueConstraint, false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ImageStatus(StrEnum):
    ok = "ok"
    pending_download = "pending_download"
    quarantined = "quarantined"


class Role(StrEnum):
    annotator = "annotator"
    curator = "curator"
    reviewer = "reviewer"
    admin = "admin"


class Answer(StrEnum):
    yes = "yes"
    no = "no"
    skip = "skip"


class LabelSource(StrEnum):
    human = "human"
    model = "model"
    label_studio = "label-studio"


class GroupStatus(StrEnum):
    draft = "draft"
    complete = "complete"
    captioned = "captioned"
    verified = "verified"
    rejected = "rejected"
    split = "split"  # replaced by the groups split from it (their source is "split:<this id>")


class CaptionStatus(StrEnum):
    proposed = "proposed"
    accepted = "accepted"
    rejected = "rejected"


class ModelKind(StrEnum):
    filter = "filter"
    captioner = "captioner"
    relsim = "relsim"
    baseline = "baseline"


class Image(SQLModel, table=True):
    """One distinct image (by content). URL rows awaiting download have no sha256 yet."""

    __table_args__ = (Index("ix_image_status_id", "status", "id"), Index("ix_image_dedup_todo", "dedup_done", "status"))

    id: Optional[int] = Field(default=None, primary_key=True)
    sha256: Optional[str] = Field(default=None, max_length=64, unique=True)
    ext: Optional[str] = Field(default=None, max_length=8)
    source_uri: str = Field(max_length=4096)  # first source seen; all sources in ImageSource
    alt_text: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    size_bytes: Optional[int] = None
    phash: Optional[str] = Field(default=None, max_length=16, index=True)
    split: Optional[str] = Field(default=None, max_length=16)
    status: str = Field(default=ImageStatus.ok, max_length=24)
    quarantine_reason: Optional[str] = Field(default=None, max_length=64)
    quarantine_detail: Optional[str] = None
    added_at: datetime = Field(default_factory=utcnow)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Near-duplicate search has looked at this image: the post-ingest step works over "not yet
    # done" rather than "added by this run", so a kill between the row write and it is caught up.
    dedup_done: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class ImageSource(SQLModel, table=True):
    """Every place an image came from; exact duplicates merge into one Image with many sources."""

    __tablename__ = "image_source"

    id: Optional[int] = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    uri: str = Field(max_length=4096, unique=True)
    kind: str = Field(max_length=16)  # folder | url | jsonl | parquet | seed_group | synthetic | pool
    alt_text: Optional[str] = None
    ref_hash: Optional[str] = Field(default=None, max_length=64, index=True)  # reference image_hash
    added_at: datetime = Field(default_factory=utcnow)
    # Where this reference came from beyond its URI, e.g. for a filtered pool (curation/ingest/keep_list.py):
    # {"pool", "shard", "key", "model_version", "score", "threshold"}. None for plain ingests.
    provenance: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    # A local file's size and mtime when last read: ingest reads it again when either changes.
    file_size: Optional[int] = Field(default=None, sa_type=BigInteger)
    file_mtime_ns: Optional[int] = Field(default=None, sa_type=BigInteger)


class NearDuplicate(SQLModel, table=True):
    """Perceptual-hash neighbours, recorded for review (never deleted automatically)."""

    __tablename__ = "near_duplicate"

    image_a: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    image_b: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    distance: int
    reviewed: Optional[str] = Field(default=None, max_length=16)  # same | different


class NearDuplicateDecision(SQLModel, table=True):
    """Append-only curator decisions on a near-duplicate pair (curation/ingest/dedup_review.py):
    keep_both | duplicate | merge (then `canonical_id` is the image exports and the labeling pool
    use in place of the other). The newest decision of a pair wins; originals are never deleted."""

    __tablename__ = "near_duplicate_decision"

    id: Optional[int] = Field(default=None, primary_key=True)
    image_a: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    image_b: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    decision: str = Field(max_length=16)
    canonical_id: Optional[int] = Field(default=None, foreign_key="image.id", ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    username: str = Field(max_length=128)  # kept when the account is later removed
    request_id: str = Field(max_length=64, unique=True)  # a double click records one decision
    created_at: datetime = Field(default_factory=utcnow)


class RejectedRecord(SQLModel, table=True):
    """An input record that is not an image at all (bad JSON line, bad URL, missing file):
    kept aside with its location and reason so nothing is silently dropped."""

    __tablename__ = "rejected_record"

    id: Optional[int] = Field(default=None, primary_key=True)
    location: str = Field(max_length=4096, unique=True)  # file:line / file:row N
    reason: str = Field(max_length=64, index=True)
    detail: str
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Append-only record of account and export actions: who (an app user or, for the command
    line, the operator name), through which channel (web | cli), what, on what."""

    __tablename__ = "audit_event"

    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=8)  # web | cli
    actor: str = Field(max_length=256)  # app username (web) or operator name (cli)
    action: str = Field(max_length=64, index=True)
    target: Optional[str] = Field(default=None, max_length=256)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=128, unique=True)
    role: str = Field(default=Role.annotator, max_length=16)
    password_hash: str
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A signed-in browser session of the web app. Only the sha256 of its random token is kept,
    so a copy of the database signs nobody in; `revoked_at` ends it server-side (logout, a
    disabled account), whatever the browser still holds."""

    __tablename__ = "web_session"

    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: Optional[datetime] = None


class FilterLabel(SQLModel, table=True):
    """Append-only label events. A change of mind is a new event that supersedes the old one;
    `CurrentLabel` points at the event in force for each (image, user)."""

    __tablename__ = "filter_label"
    __table_args__ = (Index("ix_filter_label_image_user", "image_id", "user_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id", index=True)
    answer: str = Field(max_length=8)
    source: str = Field(default=LabelSource.human, max_length=16)
    lead_time_ms: Optional[int] = None
    supersedes_id: Optional[int] = Field(default=None, foreign_key="filter_label.id")
    request_id: Optional[str] = Field(default=None, max_length=64, unique=True)  # idempotency key
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)


class CurrentLabel(SQLModel, table=True):
    """The one label in force per (image, annotator); the primary key makes a second impossible."""

    __tablename__ = "current_label"
    __table_args__ = (Index("ix_current_label_image", "image_id"), Index("ix_current_label_user", "user_id"))

    image_id: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    label_id: int = Field(foreign_key="filter_label.id")
    answer: str = Field(max_length=8)


class SeedGroup(SQLModel, table=True):
    __tablename__ = "seed_group"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=256)
    note: Optional[str] = None
    status: str = Field(default=GroupStatus.draft, max_length=16, index=True)
    needs_split: bool = False  # imported with more than 10 members
    source: str = Field(default="curator", max_length=64)
    created_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class GroupMember(SQLModel, table=True):
    __tablename__ = "group_member"
    __table_args__ = (Index("ix_group_member_image", "image_id"),)

    group_id: int = Field(foreign_key="seed_group.id", primary_key=True, ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    position: int = 0


class Caption(SQLModel, table=True):
    """An anonymous caption for a group or a single image. Exports use status == accepted."""

    __table_args__ = (
        Index("ix_caption_group", "group_id"),
        Index("ix_caption_image", "image_id"),
        Index("ix_caption_status", "status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    group_id: Optional[int] = Field(default=None, foreign_key="seed_group.id", ondelete="CASCADE")
    image_id: Optional[int] = Field(default=None, foreign_key="image.id", ondelete="CASCADE")
    text: str
    source: str = Field(max_length=32)  # import | model | human | ground_truth
    status: str = Field(default=CaptionStatus.proposed, max_length=16)
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id")
    created_at: datetime = Field(default_factory=utcnow)


class CaptionReview(SQLModel, table=True):
    """Append-only review history of a caption."""

    __tablename__ = "caption_review"

    id: Optional[int] = Field(default=None, primary_key=True)
    caption_id: int = Field(foreign_key="caption.id", index=True, ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    action: str = Field(max_length=16)  # accept | edit | reject
    text: Optional[str] = None
    reason: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class CaptionProposal(SQLModel, table=True):
    """What the captioner loop (training/captioner_loop.py) knows about a caption it generated:
    the model version, its confidence (mean token log-probability), the anonymity checker's
    verdict, and, once the review sample is drawn, why and in which place it was queued
    (`queue_reason`: flagged | low_confidence | audit; None = generated but not queued)."""

    __tablename__ = "caption_proposal"
    __table_args__ = (Index("ix_caption_proposal_queue", "queue_reason", "queue_rank"),)

    caption_id: int = Field(foreign_key="caption.id", primary_key=True, ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    model_version_id: int = Field(foreign_key="model_version.id", index=True, ondelete="CASCADE")
    confidence: Optional[float] = None
    checker_ok: bool = True
    checker_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    queue_reason: Optional[str] = Field(default=None, max_length=16)
    queue_rank: Optional[int] = None
    job_id: Optional[int] = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class WorkspaceSetting(SQLModel, table=True):
    """A workspace-wide setting chosen in the app or the CLI (e.g. the relsim space the group
    builder searches by default); one JSON value per key."""

    __tablename__ = "workspace_setting"

    key: str = Field(max_length=64, primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    updated_by: Optional[int] = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, index=True)
    name: str = Field(max_length=128)
    version: int = 1
    base_model: str = Field(max_length=512)
    adapter_path: Optional[str] = Field(default=None, max_length=4096)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    trained_on: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Prediction(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("model_version_id", "image_id"),
        Index("ix_prediction_model_score", "model_version_id", "score"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    model_version_id: int = Field(foreign_key="model_version.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    score: Optional[float] = None
    text: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class TaskAssignment(SQLModel, table=True):
    """A lease of one image to one annotator; expired leases return to the pool."""

    __tablename__ = "task_assignment"
    __table_args__ = (
        UniqueConstraint("kind", "image_id", "user_id"),
        Index("ix_task_user_status", "user_id", "status"),
        Index("ix_task_status_expires", "status", "expires_at"),
        Index("ix_task_image", "image_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(default="filter", max_length=16)
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="app_user.id")
    status: str = Field(default="leased", max_length=16)  # leased | done | expired
    strategy: str = Field(default="random", max_length=32)
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id")
    is_gold: bool = False
    leased_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    completed_at: Optional[datetime] = None


class ExportManifest(SQLModel, table=True):
    __tablename__ = "export_manifest"

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    path: str = Field(max_length=4096)
    created_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    files: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


# -- Filter labeling: queue state, gold answers, adjudication, guideline examples ----------------


class LabelTask(SQLModel, table=True):
    """Queue state of one image for one task kind, kept on write so that handing out the next
    task is one index range scan: a random order key fixed at creation, the overlap target
    (k annotators on a sampled fraction, 1 elsewhere, 0 for gold images), how many annotators
    hold or finished a lease, and `is_open` (assigned < target)."""

    __tablename__ = "label_task"
    __table_args__ = (Index("ix_label_task_pick", "kind", "is_open", "order_key"),)

    kind: str = Field(default="filter", max_length=16, primary_key=True)
    image_id: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    order_key: int  # uniform random in [0, 2**31): the "random" order
    sample_u: float  # uniform in [0, 1): in the overlap sample when < QueueConfig.overlap_fraction
    target: int = 1
    assigned: int = 0
    is_open: bool = True


class QueueConfig(SQLModel, table=True):
    """Per task kind: overlap, gold rate, lease length and the ordering strategy (by name)."""

    __tablename__ = "queue_config"

    kind: str = Field(max_length=16, primary_key=True)
    overlap_k: int = 2
    overlap_fraction: float = 0.1
    gold_rate: float = 0.0
    lease_seconds: int = 900
    strategy: str = Field(default="random", max_length=32)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The generation of queue_rank rows the model-driven orders serve, and the last generation
    # handed to a writer (queue_heads: heads are written under a fresh generation, then served).
    heads_generation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    heads_issued: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    updated_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    updated_at: datetime = Field(default_factory=utcnow)


class GoldAnswer(SQLModel, table=True):
    """Known filter answers (honeypots) mixed into annotators' queues to measure accuracy."""

    __tablename__ = "gold_answer"

    image_id: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    answer: str = Field(max_length=8)
    note: Optional[str] = None
    created_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Adjudication(SQLModel, table=True):
    """Append-only reviewer decisions on disputed filter labels; the latest per image overrides
    the annotators' majority in the consensus label."""

    __table_args__ = (Index("ix_adjudication_image", "image_id", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    user_id: Optional[int] = Field(default=None, foreign_key="app_user.id")
    answer: str = Field(max_length=8)
    note: Optional[str] = None
    request_id: Optional[str] = Field(default=None, max_length=64, unique=True)  # idempotency key
    created_at: datetime = Field(default_factory=utcnow)


class GuidelineExample(SQLModel, table=True):
    """Images an admin pinned as a clear Yes / clear No example for the filter guidelines."""

    __tablename__ = "guideline_example"

    image_id: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    answer: str = Field(max_length=8)
    note: Optional[str] = None
    pinned_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    pinned_at: datetime = Field(default_factory=utcnow)


# -- Label Studio as a second front end (curation/labelstudio) -------------------------------


class LSProject(SQLModel, table=True):
    """A Label Studio project relcurate created: which server, which purpose (filter | caption),
    and the label config it was given (a hand-edited config is detected against this)."""

    __tablename__ = "ls_project"
    __table_args__ = (UniqueConstraint("server", "purpose"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    server: str = Field(max_length=512)  # base URL, no credentials
    purpose: str = Field(max_length=16)  # filter | caption
    ls_project_id: int
    label_config: str
    model_version: Optional[str] = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)


class LSTask(SQLModel, table=True):
    """Task <-> image (filter) or task <-> caption (caption review), one row per pushed task:
    a re-push skips what is here. `deleted_at` is set when the task vanished from the server."""

    __tablename__ = "ls_task"
    __table_args__ = (UniqueConstraint("project_id", "image_id"), UniqueConstraint("project_id", "caption_id"),
                      UniqueConstraint("project_id", "ls_task_id"))

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="ls_project.id", ondelete="CASCADE")
    ls_task_id: int
    image_id: Optional[int] = Field(default=None, foreign_key="image.id", ondelete="CASCADE")
    caption_id: Optional[int] = Field(default=None, foreign_key="caption.id", ondelete="CASCADE")
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id")
    deleted_at: Optional[datetime] = None
    pushed_at: datetime = Field(default_factory=utcnow)


class LSUser(SQLModel, table=True):
    """Label Studio user (by e-mail, per server) <-> relcurate user."""

    __tablename__ = "ls_user"
    __table_args__ = (UniqueConstraint("server", "ls_email"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    server: str = Field(max_length=512)
    ls_email: str = Field(max_length=256)
    user_id: int = Field(foreign_key="app_user.id")


class LSAnnotation(SQLModel, table=True):
    """A pulled Label Studio annotation and what it became: the relcurate event in force for it
    (`label_id` / caption review), its revision counter (each change is a new event) and whether
    it was deleted. Makes pull and webhooks idempotent."""

    __tablename__ = "ls_annotation"
    __table_args__ = (UniqueConstraint("project_id", "ls_annotation_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="ls_project.id", ondelete="CASCADE")
    ls_annotation_id: int
    ls_task_id: int
    user_id: int = Field(foreign_key="app_user.id")
    answer: Optional[str] = Field(default=None, max_length=16)  # yes | no | skip, or caption action
    fingerprint: str = Field(max_length=64)  # hash of the result that was ingested
    revision: int = 1
    label_id: Optional[int] = Field(default=None, foreign_key="filter_label.id")
    deleted: bool = False
    pulled_at: datetime = Field(default_factory=utcnow)


# -- Evaluation: retrieval / judge / mining runs, the judge's cache, the people's A/B study -------


class EvalRun(SQLModel, table=True):
    """One evaluation result (retrieval study, judge pass, mining, A/B study): its parameters,
    headline metrics and the versioned result file (workspace-relative) holding the details."""

    __tablename__ = "eval_run"
    __table_args__ = (Index("ix_eval_run_kind", "kind", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # retrieval | judge | mining | ab
    name: str = Field(max_length=256)
    status: str = Field(default="running", max_length=16)  # running | done | partial | open (A/B) | failed
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    path: Optional[str] = Field(default=None, max_length=4096)
    parent_id: Optional[int] = Field(default=None, foreign_key="eval_run.id")  # e.g. judge -> retrieval
    created_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: Optional[datetime] = None


class JudgeVerdict(SQLModel, table=True):
    """The LLM judge's answer for one (endpoint, model, prompt, temperature, image pair): a rerun
    reads it here instead of paying again. Invalid replies are kept (score NULL) with the text."""

    __tablename__ = "judge_verdict"

    key: str = Field(max_length=64, primary_key=True)  # sha256 of the cache key fields
    endpoint: str = Field(max_length=1024)
    model: str = Field(max_length=256)
    image_a: str = Field(max_length=64)  # sha256 of the image bytes
    image_b: str = Field(max_length=64)
    score: Optional[float] = None
    valid: bool = False
    reply: str = ""  # the reply text, cut to a few hundred characters
    prompt_tokens: int = 0
    completion_tokens: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class AbTriplet(SQLModel, table=True):
    """A query and the top hits of two methods, for raters to compare (A = method_a's hit)."""

    __tablename__ = "ab_triplet"
    __table_args__ = (UniqueConstraint("study_id", "query_image_id", "method_a", "method_b"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="eval_run.id", index=True, ondelete="CASCADE")
    query_image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    method_a: str = Field(max_length=160)
    method_b: str = Field(max_length=160)
    image_a: int = Field(foreign_key="image.id", ondelete="CASCADE")
    image_b: int = Field(foreign_key="image.id", ondelete="CASCADE")
    position: int = 0  # presentation order key (seeded shuffle)


class AbAnswer(SQLModel, table=True):
    """One rater's answer for one triplet; the primary key makes a second (a double click) impossible.
    `choice` is in method terms (a | b | same); `a_on_left` records what the rater saw."""

    __tablename__ = "ab_answer"
    __table_args__ = (Index("ix_ab_answer_user", "user_id"),)

    triplet_id: int = Field(foreign_key="ab_triplet.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="app_user.id", primary_key=True)
    choice: str = Field(max_length=8)
    a_on_left: bool = True
    lead_time_ms: Optional[int] = None
    created_at: datetime = Field(default_factory=utcnow)


# -- Background jobs and the active-learning queue head ----------------------------------------


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Job(SQLModel, table=True):
    """A unit of long work (fast-head refresh, retrain, export) run by a worker process, never
    in a page request. `active_key` holds the dedup key while the job is queued or running and
    is cleared when it ends: the unique index then refuses a second live job for the same key
    (a double click), while a later refresh with the same key is a new job."""

    __table_args__ = (Index("ix_job_state_id", "state", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)  # handler name
    state: str = Field(default=JobState.queued, max_length=16)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dedup_key: Optional[str] = Field(default=None, max_length=128)
    active_key: Optional[str] = Field(default=None, max_length=128, unique=True)
    requested_by: Optional[int] = Field(default=None, foreign_key="app_user.id")
    progress: float = 0.0  # 0..1
    progress_note: Optional[str] = Field(default=None, max_length=256)
    log_tail: str = ""
    error: Optional[str] = None
    attempts: int = 0
    max_attempts: int = 3
    worker: Optional[str] = Field(default=None, max_length=128)
    heartbeat_at: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None


class QueueRank(SQLModel, table=True):
    """The head of one model-driven task order: the first few thousand images of a strategy's
    ranking. Each refresh writes its heads under a new `generation` in short chunks and then
    points QueueConfig.heads_generation at it; readers see only that generation. The primary
    key (kind, generation, strategy, rank) is the index the next-task walk follows (equality on
    the first three, in rank order), probing label_task by primary key."""

    __tablename__ = "queue_rank"

    kind: str = Field(default="filter", max_length=16, primary_key=True)
    generation: int = Field(default=0, primary_key=True)
    strategy: str = Field(max_length=32, primary_key=True)
    rank: int = Field(primary_key=True)
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id", ondelete="CASCADE")
    score: Optional[float] = None
