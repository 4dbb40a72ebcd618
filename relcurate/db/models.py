"""One typed table per concept. Status/kind columns are plain strings checked against StrEnums in
Python (no database ENUM types: they make PostgreSQL migrations painful and add nothing here).

Timestamps are timezone-aware UTC (sqlmodel's UTCDateTime refuses naive ones).
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, UniqueConstraint
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

    __table_args__ = (Index("ix_image_status_id", "status", "id"),)

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


class ImageSource(SQLModel, table=True):
    """Every place an image came from; exact duplicates merge into one Image with many sources."""

    __tablename__ = "image_source"

    id: Optional[int] = Field(default=None, primary_key=True)
    image_id: int = Field(foreign_key="image.id", index=True, ondelete="CASCADE")
    uri: str = Field(max_length=4096, unique=True)
    kind: str = Field(max_length=16)  # folder | url | jsonl | parquet | seed_group | synthetic
    alt_text: Optional[str] = None
    ref_hash: Optional[str] = Field(default=None, max_length=64, index=True)  # reference image_hash
    added_at: datetime = Field(default_factory=utcnow)


class NearDuplicate(SQLModel, table=True):
    """Perceptual-hash neighbours, recorded for review (never deleted automatically)."""

    __tablename__ = "near_duplicate"

    image_a: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    image_b: int = Field(foreign_key="image.id", primary_key=True, ondelete="CASCADE")
    distance: int
    reviewed: Optional[str] = Field(default=None, max_length=16)  # same | different


class RejectedRecord(SQLModel, table=True):
    """An input record that is not an image at all (bad JSON line, bad URL, missing file):
    kept aside with its location and reason so nothing is silently dropped."""

    __tablename__ = "rejected_record"

    id: Optional[int] = Field(default=None, primary_key=True)
    location: str = Field(max_length=4096, unique=True)  # file:line / file:row N
    reason: str = Field(max_length=64, index=True)
    detail: str
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=128, unique=True)
    role: str = Field(default=Role.annotator, max_length=16)
    password_hash: str
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


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
    ranking, rewritten in one transaction by each refresh. The primary key (kind, strategy,
    rank) is the index the next-task walk follows, probing label_task by primary key."""

    __tablename__ = "queue_rank"

    kind: str = Field(default="filter", max_length=16, primary_key=True)
    strategy: str = Field(max_length=32, primary_key=True)
    rank: int = Field(primary_key=True)
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id", ondelete="CASCADE")
    score: Optional[float] = None
