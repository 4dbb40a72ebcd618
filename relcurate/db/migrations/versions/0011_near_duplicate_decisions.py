"""near-duplicate decisions: append-only curator verdicts (keep both, duplicate, merge)

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0011"
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "near_duplicate_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_a", sa.Integer(), nullable=False),
        sa.Column("image_b", sa.Integer(), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("canonical_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["image_a"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_b"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["canonical_id"], ["image.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index(op.f("ix_near_duplicate_decision_image_a"), "near_duplicate_decision", ["image_a"], unique=False)
    op.create_index(op.f("ix_near_duplicate_decision_image_b"), "near_duplicate_decision", ["image_b"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_near_duplicate_decision_image_b"), table_name="near_duplicate_decision")
    op.drop_index(op.f("ix_near_duplicate_decision_image_a"), table_name="near_duplicate_decision")
    op.drop_table("near_duplicate_decision")
