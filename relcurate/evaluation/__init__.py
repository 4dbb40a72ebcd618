"""Evaluation: the paper's retrieval study, an LLM judge, a people's A/B study, the similarity
space and "relationally close, visually far" mining. Library only; the CLI and pages call it."""
