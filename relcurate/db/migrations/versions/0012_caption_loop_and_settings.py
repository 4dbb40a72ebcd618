"""captioner loop: what the loop knows of each generated caption (caption_proposal); workspace settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caption_proposal",
        sa.Column("caption_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("checker_ok", sa.Boolean(), nullable=False),
        sa.Column("checker_codes", sa.JSON(), nullable=False),
        sa.Column("queue_reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("queue_rank", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["caption_id"], ["caption.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("caption_id"),
    )
    op.create_index(op.f("ix_caption_proposal_image_id"), "caption_proposal", ["image_id"], unique=False)
    op.create_index(op.f("ix_caption_proposal_model_version_id"), "caption_proposal", ["model_version_id"],
                    unique=False)
    op.create_index("ix_caption_proposal_queue", "caption_proposal", ["queue_reason", "queue_rank"], unique=False)
    op.create_table(
        "workspace_setting",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["updated_by"], ["app_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("workspace_setting")
    op.drop_index("ix_caption_proposal_queue", table_name="caption_proposal")
    op.drop_index(op.f("ix_caption_proposal_model_version_id"), table_name="caption_proposal")
    op.drop_index(op.f("ix_caption_proposal_image_id"), table_name="caption_proposal")
    op.drop_table("caption_proposal")
