"""relserver: a small, self-hostable server that speaks Sentry's release-artifact API."""

__version__ = "0.1.0"
