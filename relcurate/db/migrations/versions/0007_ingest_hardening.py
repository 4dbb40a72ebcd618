"""ingest hardening: source file stamps, near-duplicate progress flag, audit events

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('image_source', schema=None) as batch_op:
        batch_op.add_column(sa.Column('file_size', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('file_mtime_ns', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedup_done', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_image_dedup_todo', ['dedup_done', 'status'], unique=False)
    # Images stored before this revision went through the near-duplicate step already.
    op.execute(sa.text("UPDATE image SET dedup_done = :t WHERE status = 'ok'").bindparams(t=True))

    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_created_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_action'))
    op.drop_table('audit_event')
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_dedup_todo')
        batch_op.drop_column('dedup_done')
    with op.batch_alter_table('image_source', schema=None) as batch_op:
        batch_op.drop_column('file_mtime_ns')
        batch_op.drop_column('file_size')
