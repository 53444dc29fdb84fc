"""Data Sandbox service: FastAPI gateway, persistence, auth, services, job runner, client and CLI."""
