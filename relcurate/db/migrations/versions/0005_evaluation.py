"""evaluation: eval runs, the LLM judge's cache, A/B triplets and answers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0005"
down_revision = '0004'
branch_labels = None
depends_on = None

S = sqlmodel.sql.sqltypes.AutoString
T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "eval_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("name", S(length=256), nullable=False),
        sa.Column("status", S(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("path", S(length=4096), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", T(), nullable=False),
        sa.Column("finished_at", T(), nullable=True),
        sa.ForeignKeyConstraint(["parent_id"], ["eval_run.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.create_index("ix_eval_run_kind", ["kind", "id"], unique=False)

    op.create_table(
        "judge_verdict",
        sa.Column("key", S(length=64), nullable=False),
        sa.Column("endpoint", S(length=1024), nullable=False),
        sa.Column("model", S(length=256), nullable=False),
        sa.Column("image_a", S(length=64), nullable=False),
        sa.Column("image_b", S(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("reply", S(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", T(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "ab_triplet",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("query_image_id", sa.Integer(), nullable=False),
        sa.Column("method_a", S(length=160), nullable=False),
        sa.Column("method_b", S(length=160), nullable=False),
        sa.Column("image_a", sa.Integer(), nullable=False),
        sa.Column("image_b", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["eval_run.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["query_image_id"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_a"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_b"], ["image.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "query_image_id", "method_a", "method_b"),
    )
    with op.batch_alter_table("ab_triplet", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ab_triplet_study_id"), ["study_id"], unique=False)

    op.create_table(
        "ab_answer",
        sa.Column("triplet_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("choice", S(length=8), nullable=False),
        sa.Column("a_on_left", sa.Boolean(), nullable=False),
        sa.Column("lead_time_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", T(), nullable=False),
        sa.ForeignKeyConstraint(["triplet_id"], ["ab_triplet.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("triplet_id", "user_id"),
    )
    with op.batch_alter_table("ab_answer", schema=None) as batch_op:
        batch_op.create_index("ix_ab_answer_user", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ab_answer", schema=None) as batch_op:
        batch_op.drop_index("ix_ab_answer_user")
    op.drop_table("ab_answer")
    with op.batch_alter_table("ab_triplet", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ab_triplet_study_id"))
    op.drop_table("ab_triplet")
    op.drop_table("judge_verdict")
    with op.batch_alter_table("eval_run", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_run_kind")
    op.drop_table("eval_run")
