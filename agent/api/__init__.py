"""The HTTP service: health, status, jobs, users and sessions, live updates, metrics."""
