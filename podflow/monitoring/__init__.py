"""What operators read: snapshots of the broker and the store, the dashboard's overview, Prometheus.

- ``snapshot.py``: what the broker and the store hold now (``podflow status``);
- ``overview.py``: the dashboard's one read (``GET /api/monitor/overview``);
- ``prometheus.py``: ``GET /metrics``, computed at each scrape.

Read-only: nothing here changes the broker or the store. The counters they read are
the store's own (:mod:`podflow.store.counters`).
"""
