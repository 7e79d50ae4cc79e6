"""The composition package: the one place that picks and builds the adapters of a process (the
API, an arq worker, a CLI command) from its settings: store, index, search parameter registry,
job queue, and the contexts the interactions and jobs run with. Only the entry points
(app/main.py, app/cli.py, the arq worker's) import it; nothing else imports an adapter.

- engines.py: open the store and the index (embedded SQLite, or MongoDB and Elasticsearch)
- assemble.py: recover, learn the stored SearchParameters, choose the job queue once, and build
  the request and job contexts over them
- worker.py: the arq worker of `micdr worker`, over the same assembly
"""
