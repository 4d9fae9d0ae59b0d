"""podflow's scheduler process (APScheduler): sweeps every PODFLOW_SWEEP_INTERVAL.

Started by ``python -m scheduler`` or ``podflow scheduler``; only the process
wiring lives here, the sweep itself is in :mod:`podflow.sweep` and
:mod:`podflow.sweeper`.
"""
