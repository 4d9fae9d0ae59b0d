"""podflow scheduler process (APScheduler): runs the sweep on an interval."""
