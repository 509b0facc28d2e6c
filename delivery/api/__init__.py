"""The engine's HTTP API: Segment's tracking endpoints, health, metrics and admin (FastAPI)."""
