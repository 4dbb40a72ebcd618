"""Label Studio front end: projects, task <-> image/caption mapping, user mapping, pulled annotations

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('ls_project',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server', _S(length=512), nullable=False),
    sa.Column('purpose', _S(length=16), nullable=False),
    sa.Column('ls_project_id', sa.Integer(), nullable=False),
    sa.Column('label_config', _S(), nullable=False),
    sa.Column('model_version', _S(length=256), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('server', 'purpose')
    )
    op.create_table('ls_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server', _S(length=512), nullable=False),
    sa.Column('ls_email', _S(length=256), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('server', 'ls_email')
    )
    op.create_table('ls_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('caption_id', sa.Integer(), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('deleted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('pushed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['caption_id'], ['caption.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['ls_project.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'caption_id'),
    sa.UniqueConstraint('project_id', 'image_id'),
    sa.UniqueConstraint('project_id', 'ls_task_id')
    )
    op.create_table('ls_annotation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('ls_annotation_id', sa.Integer(), nullable=False),
    sa.Column('ls_task_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('answer', _S(length=16), nullable=True),
    sa.Column('fingerprint', _S(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('pulled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['label_id'], ['filter_label.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['ls_project.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'ls_annotation_id')
    )


def downgrade() -> None:
    op.drop_table('ls_annotation')
    op.drop_table('ls_task')
    op.drop_table('ls_user')
    op.drop_table('ls_project')
