"""Serving a trained model over HTTP (FastAPI): see app.py."""
