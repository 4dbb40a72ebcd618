"""versioned queue heads: queue_rank.generation in the primary key, the served generation on queue_config

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLS = "kind, strategy, rank, image_id, model_version_id, score"


def _rebuild_queue_rank(versioned: bool, copy_where: str = "") -> None:
    """queue_rank with a new primary key: create, copy, drop, rename. (Alembic's batch mode on
    SQLite keeps the reflected key's primary_key flags and warns that a future SQLAlchemy will
    refuse; a plain rebuild is as short, and the table holds a few thousand rows.)"""
    cols = [sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False)]
    if versioned:
        cols.append(sa.Column("generation", sa.Integer(), nullable=False))
    cols += [
        sa.Column("strategy", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        # Named as PostgreSQL names them on a fresh store (names need only be unique per table).
        sa.ForeignKeyConstraint(["image_id"], ["image.id"], ondelete="CASCADE", name="queue_rank_image_id_fkey"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_version.id"], ondelete="CASCADE",
                                name="queue_rank_model_version_id_fkey"),
    ]
    pk = ["kind", "generation", "strategy", "rank"] if versioned else ["kind", "strategy", "rank"]
    op.create_table("queue_rank_new", *cols, sa.PrimaryKeyConstraint(*pk, name="queue_rank_new_pkey"))
    # The stored heads become generation 0, which every queue config serves after the upgrade.
    op.execute(f"INSERT INTO queue_rank_new ({_COLS}{', generation' if versioned else ''}) "
               f"SELECT {_COLS}{', 0' if versioned else ''} FROM queue_rank {copy_where}")
    op.drop_table("queue_rank")
    op.rename_table("queue_rank_new", "queue_rank")
    if op.get_bind().dialect.name == "postgresql":  # keep the key's usual name (SQLite's has none)
        op.execute("ALTER TABLE queue_rank RENAME CONSTRAINT queue_rank_new_pkey TO queue_rank_pkey")


def upgrade() -> None:
    with op.batch_alter_table("queue_config", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heads_generation", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("heads_issued", sa.Integer(), server_default="0", nullable=False))
    _rebuild_queue_rank(True)


def downgrade() -> None:
    # Only the served generation fits the old key.
    _rebuild_queue_rank(False, "WHERE generation = COALESCE((SELECT heads_generation FROM queue_config "
                               "WHERE queue_config.kind = queue_rank.kind), 0)")
    with op.batch_alter_table("queue_config", schema=None) as batch_op:
        batch_op.drop_column("heads_issued")
        batch_op.drop_column("heads_generation")
