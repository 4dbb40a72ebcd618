"""Filtering a web-scale pool that never enters the store: stream shards (shards.py), score them
resumably across processes (scoring.py), pick the kept list (keep.py). Ingest of the kept list is
`curation/ingest/keep_list.py`."""
