"""Shared helpers: metrics, safe checkpoint files, pictures and videos."""
