"""Persistence: SQLAlchemy models, engine setup, the image store, migrations and training exports."""
