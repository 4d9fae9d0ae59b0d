"""Queue mode's worker side: the Dramatiq broker, its middleware, the actor and the workers' metrics.

- ``broker.py``: :func:`~podflow.worker.broker.build_broker` and the middleware podflow declares;
- ``actors.py``: ``generate_podcast`` and the per-process resources (imported by
  ``dramatiq podflow.actors`` through the :mod:`podflow.actors` shim);
- ``exporter.py``: the workers' own Prometheus exporter (PODFLOW_WORKER_METRICS_PORT).

Importing this package opens and loads nothing; importing ``actors`` does (it is an entry point).
"""
