"""The synthetic relational demo: templates, drawing, building the demo workspace."""
