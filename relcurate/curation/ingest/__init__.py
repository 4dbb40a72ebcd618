"""Getting images into the store: readers, checks, store writes, downloads, near-duplicates, imports."""
