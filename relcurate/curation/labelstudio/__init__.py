"""Label Studio as a second front end: relcurate's store stays the source of truth.

connection (config + HTTP client), server (a local Label Studio), projects (label configs),
mapping (task <-> image, Label Studio user <-> relcurate user), push, pull, webhooks.
"""
