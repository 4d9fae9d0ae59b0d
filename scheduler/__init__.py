"""podflow's scheduler process (APScheduler): sweeps every PODFLOW_SWEEP_INTERVAL.

Started by ``python -m scheduler`` or ``podflow scheduler``; only the process
wiring lives here; the sweep itself (its rules, and the service a process
runs them with) is :mod:`podflow.sweep`.
"""
