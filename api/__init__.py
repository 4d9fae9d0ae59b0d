"""podflow HTTP API (Starlette): HTTP wiring only; the logic lives in podflow/.

- ``app.py``: ``create_app(settings, ...)`` and ``app`` for ``uvicorn api.app:app``;
- ``routing.py``: the route table each ``routes/*.py`` module declares its endpoints in;
- ``openapi.py``: the OpenAPI document, built from the same table;
- ``errors.py``: the one ``exception_handlers`` table; ``schemas.py``: request and
  response models; ``services.py``: what the lifespan opens;
- ``auth.py`` (bearer token), ``limits.py`` (body sizes), ``sse.py`` (Server-Sent Events).

To add routes (a dashboard, ``/metrics``), declare them in a ``RouteTable`` and pass
it to ``create_app(tables=(*ROUTE_TABLES, mine.routes))``: they are then served and
documented together.
"""
