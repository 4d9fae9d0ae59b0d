"""``podflow config``: validate the settings and show what podflow will use."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import SecretStr

from ..exitcodes import RET_OK
from ..settings import Settings, env_var


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="validate the settings and print them (secrets hidden)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        env = env_var(name)
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "<set>" if value.get_secret_value() else ""
        values[env] = value if isinstance(value, int | float | str | type(None)) else str(value)
    if args.json:
        print(json.dumps(values, indent=2))
    else:
        width = max(map(len, values))
        for env, value in values.items():
            print(f"{env:<{width}}  {'' if value is None else value}")
        print(f"{'(store)':<{width}}  {settings.store_kind}")
    return RET_OK
