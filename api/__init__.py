"""podflow HTTP API (Starlette): HTTP wiring only; the logic lives in podflow/."""
