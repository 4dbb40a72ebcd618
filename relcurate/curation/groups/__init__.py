"""Seed groups: membership, search, grouping metrics, anonymous captions and their checker."""
