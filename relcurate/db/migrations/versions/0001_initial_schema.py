"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('image',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('ext', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('source_uri', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
    sa.Column('alt_text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    sa.Column('phash', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('split', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('quarantine_reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('quarantine_detail', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_phash'), ['phash'], unique=False)
        batch_op.create_index('ix_image_status_id', ['status', 'id'], unique=False)

    op.create_table('model_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('base_model', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('adapter_path', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('trained_on', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'version')
    )
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_version_kind'), ['kind'], unique=False)

    op.create_table('rejected_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('location', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('location')
    )
    with op.batch_alter_table('rejected_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejected_record_reason'), ['reason'], unique=False)

    op.create_table('adjudication',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('adjudication', schema=None) as batch_op:
        batch_op.create_index('ix_adjudication_image', ['image_id', 'id'], unique=False)

    op.create_table('export_manifest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('filter_label',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('lead_time_ms', sa.Integer(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], ),
    sa.ForeignKeyConstraint(['supersedes_id'], ['filter_label.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('filter_label', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_filter_label_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_filter_label_image_user', ['image_id', 'user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_filter_label_user_id'), ['user_id'], unique=False)

    op.create_table('gold_answer',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id')
    )
    op.create_table('guideline_example',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pinned_by', sa.Integer(), nullable=True),
    sa.Column('pinned_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pinned_by'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('image_id')
    )
    op.create_table('image_source',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('uri', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('alt_text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('ref_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uri')
    )
    with op.batch_alter_table('image_source', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_source_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_image_source_ref_hash'), ['ref_hash'], unique=False)

    op.create_table('label_task',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('order_key', sa.Integer(), nullable=False),
    sa.Column('sample_u', sa.Float(), nullable=False),
    sa.Column('target', sa.Integer(), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('kind', 'image_id')
    )
    with op.batch_alter_table('label_task', schema=None) as batch_op:
        batch_op.create_index('ix_label_task_pick', ['kind', 'is_open', 'order_key'], unique=False)

    op.create_table('near_duplicate',
    sa.Column('image_a', sa.Integer(), nullable=False),
    sa.Column('image_b', sa.Integer(), nullable=False),
    sa.Column('distance', sa.Integer(), nullable=False),
    sa.Column('reviewed', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.ForeignKeyConstraint(['image_a'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_b'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_a', 'image_b')
    )
    op.create_table('prediction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_version_id', 'image_id')
    )
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_image_id'), ['image_id'], unique=False)
        batch_op.create_index('ix_prediction_model_score', ['model_version_id', 'score'], unique=False)

    op.create_table('queue_config',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('overlap_k', sa.Integer(), nullable=False),
    sa.Column('overlap_fraction', sa.Float(), nullable=False),
    sa.Column('gold_rate', sa.Float(), nullable=False),
    sa.Column('lease_seconds', sa.Integer(), nullable=False),
    sa.Column('strategy', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['updated_by'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('kind')
    )
    op.create_table('seed_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('needs_split', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('seed_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seed_group_status'), ['status'], unique=False)

    op.create_table('task_assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('strategy', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('is_gold', sa.Boolean(), nullable=False),
    sa.Column('leased_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('completed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'image_id', 'user_id')
    )
    with op.batch_alter_table('task_assignment', schema=None) as batch_op:
        batch_op.create_index('ix_task_image', ['image_id'], unique=False)
        batch_op.create_index('ix_task_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_task_user_status', ['user_id', 'status'], unique=False)

    op.create_table('caption',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['seed_group.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('caption', schema=None) as batch_op:
        batch_op.create_index('ix_caption_group', ['group_id'], unique=False)
        batch_op.create_index('ix_caption_image', ['image_id'], unique=False)
        batch_op.create_index('ix_caption_status', ['status'], unique=False)

    op.create_table('current_label',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=False),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['label_id'], ['filter_label.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('image_id', 'user_id')
    )
    with op.batch_alter_table('current_label', schema=None) as batch_op:
        batch_op.create_index('ix_current_label_image', ['image_id'], unique=False)
        batch_op.create_index('ix_current_label_user', ['user_id'], unique=False)

    op.create_table('group_member',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['seed_group.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['image.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'image_id')
    )
    with op.batch_alter_table('group_member', schema=None) as batch_op:
        batch_op.create_index('ix_group_member_image', ['image_id'], unique=False)

    op.create_table('caption_review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('caption_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['caption_id'], ['caption.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('caption_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caption_review_caption_id'), ['caption_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('caption_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_caption_review_caption_id'))

    op.drop_table('caption_review')
    with op.batch_alter_table('group_member', schema=None) as batch_op:
        batch_op.drop_index('ix_group_member_image')

    op.drop_table('group_member')
    with op.batch_alter_table('current_label', schema=None) as batch_op:
        batch_op.drop_index('ix_current_label_user')
        batch_op.drop_index('ix_current_label_image')

    op.drop_table('current_label')
    with op.batch_alter_table('caption', schema=None) as batch_op:
        batch_op.drop_index('ix_caption_status')
        batch_op.drop_index('ix_caption_image')
        batch_op.drop_index('ix_caption_group')

    op.drop_table('caption')
    with op.batch_alter_table('task_assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_task_user_status')
        batch_op.drop_index('ix_task_status_expires')
        batch_op.drop_index('ix_task_image')

    op.drop_table('task_assignment')
    with op.batch_alter_table('seed_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seed_group_status'))

    op.drop_table('seed_group')
    op.drop_table('queue_config')
    with op.batch_alter_table('prediction', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_model_score')
        batch_op.drop_index(batch_op.f('ix_prediction_image_id'))

    op.drop_table('prediction')
    op.drop_table('near_duplicate')
    with op.batch_alter_table('label_task', schema=None) as batch_op:
        batch_op.drop_index('ix_label_task_pick')

    op.drop_table('label_task')
    with op.batch_alter_table('image_source', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_source_ref_hash'))
        batch_op.drop_index(batch_op.f('ix_image_source_image_id'))

    op.drop_table('image_source')
    op.drop_table('guideline_example')
    op.drop_table('gold_answer')
    with op.batch_alter_table('filter_label', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_filter_label_user_id'))
        batch_op.drop_index('ix_filter_label_image_user')
        batch_op.drop_index(batch_op.f('ix_filter_label_created_at'))

    op.drop_table('filter_label')
    op.drop_table('export_manifest')
    with op.batch_alter_table('adjudication', schema=None) as batch_op:
        batch_op.drop_index('ix_adjudication_image')

    op.drop_table('adjudication')
    with op.batch_alter_table('rejected_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejected_record_reason'))

    op.drop_table('rejected_record')
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_version_kind'))

    op.drop_table('model_version')
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index('ix_image_status_id')
        batch_op.drop_index(batch_op.f('ix_image_phash'))

    op.drop_table('image')
    op.drop_table('app_user')

