"""Read-side views of the store for people: browse listings, stats, image bytes for pages."""
