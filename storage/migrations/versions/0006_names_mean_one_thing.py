"""Names that mean one thing (issue 13, item 5): the `rounds` table becomes `candidates`.

A row of `rounds` was one candidate image of a round, so the table, its foreign keys and the API's
`round_id` named a candidate. The session's request was stored as `prompt`, while "prompt" means the
generator's input everywhere else. Renamed here (data kept, row ids unchanged):

- table `rounds` -> `candidates`; its `prompt` -> `request`, `refined_prompt` -> `refined_request`,
  `parent_round_id` -> `parent_candidate_id`; its indexes follow the table name (the unique
  constraint keeps the name `uq_rounds_position`: SQLite cannot rename one without copying the table);
- `sessions.prompt` -> `sessions.request`;
- `critiques.round_id` -> `candidate_id`;
- `pair_judgements.round_a_id` / `round_b_id` / `left_round_id` -> `candidate_a_id` / `candidate_b_id` /
  `left_candidate_id`.

Column renames go through batch mode with `recreate="never"`: an in-place ALTER on both backends.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table after the rename, old column, new column)
COLUMNS = [
    ("candidates", "prompt", "request"),
    ("candidates", "refined_prompt", "refined_request"),
    ("candidates", "parent_round_id", "parent_candidate_id"),
    ("sessions", "prompt", "request"),
    ("critiques", "round_id", "candidate_id"),
    ("pair_judgements", "round_a_id", "candidate_a_id"),
    ("pair_judgements", "round_b_id", "candidate_b_id"),
    ("pair_judgements", "left_round_id", "left_candidate_id"),
]
# (table after the rename, old index, new index, columns after the rename)
INDEXES = [
    ("candidates", "ix_rounds_session_id", "ix_candidates_session_id", ["session_id"]),
    ("candidates", "ix_rounds_image_sha256", "ix_candidates_image_sha256", ["image_sha256"]),
    ("candidates", "ix_rounds_source_image_sha256", "ix_candidates_source_image_sha256", ["source_image_sha256"]),
    ("critiques", "ix_critiques_round_id", "ix_critiques_candidate_id", ["candidate_id"]),
    ("pair_judgements", "ix_pair_judgements_round_a_id", "ix_pair_judgements_candidate_a_id", ["candidate_a_id"]),
    ("pair_judgements", "ix_pair_judgements_round_b_id", "ix_pair_judgements_candidate_b_id", ["candidate_b_id"]),
]


def upgrade() -> None:
    op.rename_table("rounds", "candidates")
    _rename(COLUMNS, INDEXES)


def downgrade() -> None:
    columns = [(table, new, old) for table, old, new in COLUMNS]
    indexes = [(table, new, old, [_old_column(table, c) for c in cols]) for table, old, new, cols in INDEXES]
    _rename(columns, indexes)
    op.rename_table("candidates", "rounds")


def _old_column(table: str, column: str) -> str:
    return next((old for t, old, new in COLUMNS if t == table and new == column), column)


def _rename(columns: list[tuple[str, str, str]], indexes: list[tuple[str, str, str, list[str]]]) -> None:
    """Rename the columns in place, then rebuild each index under its new name (SQLite cannot rename
    an index). Never a table copy: on SQLite, with foreign keys enforced, dropping the old copy of
    `candidates` would cascade-delete its critiques. SQLite (3.25+) and PostgreSQL both rewrite the
    foreign keys and the CHECK constraint that name a renamed column."""
    for table in dict.fromkeys(table for table, *_ in columns):
        with op.batch_alter_table(table, recreate="never") as batch:
            for index_table, old_index, _new, _cols in indexes:
                if index_table == table:
                    batch.drop_index(old_index)
            for column_table, old, new in columns:
                if column_table == table:
                    batch.alter_column(old, new_column_name=new)
        for index_table, _old, new_index, cols in indexes:
            if index_table == table:
                op.create_index(new_index, table, cols)
