"""Background work: the handler registry and the worker process that runs queued jobs."""
