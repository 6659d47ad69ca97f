"""Every input limit in one place, so the app, the loop, the generators and the critics refuse the
same things with the same numbers (each limit was once defined in two or three modules)."""

MAX_REQUEST_CHARS = 2000
"""A user's request (prompt or edit instruction) and a negative prompt, in characters."""

MAX_COMMENT_CHARS = 2000
"""An annotator's comment on one dimension."""

MAX_CANDIDATES = 16
"""Images per round (one generator call, one critique batch)."""

MAX_ROUNDS = 50
"""Rounds of one loop run."""

MAX_STEPS = 200
"""Denoising steps of one generation."""

MAX_SEED = 2**63 - 1
"""Seeds are stored as signed 64-bit integers."""
