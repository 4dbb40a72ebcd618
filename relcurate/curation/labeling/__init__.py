"""Filter labeling: leases and task orders, labels, agreement, guidelines."""
