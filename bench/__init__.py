"""podflow's benchmark harness (issue 7): ``make bench`` / ``python -m bench``.

One module per benchmark — :mod:`bench.throughput` (and worker memory),
:mod:`bench.submit`, :mod:`bench.latency`, :mod:`bench.sweep` — over real
processes (:mod:`bench.systems`: podflow, bare Dramatiq, Celery) on a private
redis-server; :mod:`bench.report` prints the one table and writes it as JSON
and Markdown under ``bench/results/``. Not part of the podflow package.
"""
