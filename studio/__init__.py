"""The application layer: what a user of the studio does (run, continue, review, compare, export),
who they are, and what the UI shows of a run. The only package that uses both rr_core and storage.

Imports run one way: app.py -> studio -> storage -> rr_core (docs/architecture.md).
"""
