"""``dramatiq podflow.actors``: the worker entry point; see :mod:`podflow.worker.actors`."""

from .worker.actors import broker, generate_podcast, resources, settings  # noqa: F401
