"""The OpenAPI 3.1 document, built from the route table and the pydantic models.

Every endpoint the app serves is an :class:`api.routing.Endpoint`; this module
describes exactly that list: parameters (path, query model, headers), request
bodies, success responses and error responses, whose body is always
:class:`api.schemas.ErrorBody`. The component schemas are generated from the
models in one pass (``pydantic.json_schema.models_json_schema``, which merges
the models' ``$defs`` and names each schema once).

Besides the statuses an endpoint declares, each may answer:

- 404 when its path has a parameter (the run, source or profile is unknown);
- 422 when it reads a query, a header or a body; 413 when it reads a body;
- 503 when it is under ``/api/`` (the store or the broker is down);
- 401 when PODFLOW_API_TOKEN is set, under ``/api/`` and for private endpoints
  (``/metrics``).
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .routing import Content, Endpoint, Media
from .schemas import ErrorBody

__all__ = ["build_spec", "error_statuses", "spec_path"]

REF = "#/components/schemas/{model}"
#: a path parameter, with or without a Starlette convertor (``{message_id:path}``)
_PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def spec_path(path: str) -> str:
    """A route's path as OpenAPI writes it: ``{message_id:path}`` is ``{message_id}``."""
    return _PATH_PARAM.sub(r"{\1}", path)


_ERROR_HEADERS = {
    401: {"WWW-Authenticate": "the auth scheme: Bearer"},
    416: {"Content-Range": "bytes */<size of the file>"},
    503: {"Retry-After": "seconds to wait before trying again"},
}
#: headers of success responses, by status
_SUCCESS_HEADERS = {
    201: {"Location": "the run's URL (path)"},
    202: {"Location": "the run's URL (path)", "Retry-After": "seconds to wait before polling the run"},
}


def error_statuses(endpoint: Endpoint, *, auth: bool) -> list[int]:
    """The error statuses ``endpoint`` may answer."""
    codes = set(endpoint.errors)
    if _PATH_PARAM.search(endpoint.path):
        codes.add(404)
    if endpoint.query or endpoint.body or endpoint.content or endpoint.headers:
        codes.add(422)
    if endpoint.body or endpoint.content:
        codes.add(413)
    if endpoint.path.startswith("/api/"):
        codes.add(503)
    if auth and endpoint.guarded:
        codes.add(401)
    return sorted(codes)


def _models(endpoints: Iterable[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}
    for endpoint in endpoints:
        for content in endpoint.responses.values():
            if isinstance(content, type):
                wanted[(content, "serialization")] = None
            for media in content if isinstance(content, tuple) else (content,):
                if isinstance(media, Media):
                    wanted.update(dict.fromkeys((model, "serialization") for model in media.models))
        for model in (endpoint.body, endpoint.query, *(endpoint.content or {}).values()):
            if model is not None:
                wanted[(model, "validation")] = None
    return list(wanted)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without its ``null`` (absent is how it is left out)."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    variants = [v for v in schema.pop("anyOf", []) if v != {"type": "null"}]
    if len(variants) == 1:
        schema.update(variants[0])
    elif variants:
        schema["anyOf"] = variants
    return schema


class _Builder:
    def __init__(self, endpoints: list[Endpoint], *, auth: bool) -> None:
        self.endpoints = endpoints
        self.auth = auth
        refs, top = models_json_schema(_models(endpoints), ref_template=REF)
        self.refs = refs
        self.schemas: dict[str, Any] = top.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return self.refs[(model, mode)]

    def content(self, content: Content, mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        if isinstance(content, type):
            return {"application/json": {"schema": self.ref(content, mode)}}
        media = content if isinstance(content, tuple) else (content,) if content is not None else ()
        return {m.media_type: {"schema": m.schema} for m in media if isinstance(m, Media)}

    def parameters(self, endpoint: Endpoint) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in _PATH_PARAM.findall(endpoint.path)
        ]
        if endpoint.query is not None:
            name = self.ref(endpoint.query, "validation")["$ref"].rsplit("/", 1)[1]
            model = self.schemas.pop(name)
            for field, schema in model["properties"].items():
                param = {"name": field, "in": "query", "required": field in model.get("required", [])}
                params.append({**param, "schema": _without_null(schema)})
        for header in endpoint.headers:
            params.append(
                {"name": header.name, "in": "header", "required": False, "description": header.description}
                | {"schema": header.schema}
            )
        return params

    def responses(self, endpoint: Endpoint) -> dict[str, Any]:
        responses: dict[str, Any] = {}
        for status, content in endpoint.responses.items():
            response: dict[str, Any] = {"description": http.HTTPStatus(status).phrase}
            if content is not None:
                response["content"] = self.content(content)
            if status in _SUCCESS_HEADERS and endpoint.method == "POST":
                response["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in _SUCCESS_HEADERS[status].items()
                }
            responses[str(status)] = response
        error = self.content(ErrorBody)
        for status in error_statuses(endpoint, auth=self.auth):
            response = {"description": http.HTTPStatus(status).phrase, "content": error}
            if status in _ERROR_HEADERS:
                response["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in _ERROR_HEADERS[status].items()
                }
            responses[str(status)] = response
        return responses

    def operation(self, endpoint: Endpoint) -> dict[str, Any]:
        summary, description = endpoint.docs
        operation: dict[str, Any] = {"operationId": endpoint.operation_id, "tags": [endpoint.tag], "summary": summary}
        if description:
            operation["description"] = description
        parameters = self.parameters(endpoint)
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {"required": True, "content": self.content(endpoint.body, "validation")}
        elif endpoint.content:
            content = {media: {"schema": self.ref(model, "validation")} for media, model in endpoint.content.items()}
            operation["requestBody"] = {"required": True, "content": content}
        operation["responses"] = self.responses(endpoint)
        if self.auth and endpoint.guarded:
            operation["security"] = [{"bearerAuth": []}]
        if endpoint.deprecated:
            operation["deprecated"] = True
        return operation

    def spec(self, *, title: str, version: str, description: str) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.endpoints:
            paths.setdefault(spec_path(endpoint.path), {})[endpoint.method.lower()] = self.operation(endpoint)
        components: dict[str, Any] = {"schemas": self.schemas}
        if self.auth:
            components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": description},
            "paths": paths,
            "components": components,
        }


def build_spec(
    endpoints: Iterable[Endpoint], *, auth: bool, title: str = "podflow", version: str = "", description: str = ""
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing ``endpoints``; ``auth``: PODFLOW_API_TOKEN is set."""
    return _Builder(list(endpoints), auth=auth).spec(title=title, version=version, description=description)
