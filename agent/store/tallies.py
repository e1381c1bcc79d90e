"""The tallies: jobs by library and state, and the ledger's outputs and bytes by library, kept in
step with their tables by triggers (migration 11), so that /api/status, /metrics and /health
read a few rows however many jobs and outputs there are.

SQLite (one writer at a time) has its triggers update the tally rows. PostgreSQL's triggers
append each change to job_tally_changes / ledger_tally_changes instead, because a tally row
updated by every change would be locked by each changing transaction until it ends: hosts
changing jobs of one library would wait for one another, and for a whole lease behind a host
frozen mid-transaction. So on PostgreSQL a reader adds the changes not folded yet to the
tallies (`JOBS`, `LEDGER`: what to select from, per dialect), and `fold` moves them into the
tallies in one statement, skipping rows another host's fold holds. Every host folds on its
dispatcher tick when there is something to fold; readers see the same sums before and after.
"""

from __future__ import annotations

from agent.store.sql import Database

JOBS = {
    "sqlite": "job_tallies",
    "postgres": "(SELECT library, state, total FROM job_tallies"
    " UNION ALL SELECT library, state, delta FROM job_tally_changes) AS tallies",
}
LEDGER = {
    "sqlite": "ledger_tallies",
    "postgres": "(SELECT library, outputs, input_bytes, output_bytes FROM ledger_tallies"
    " UNION ALL SELECT library, outputs, input_bytes, output_bytes FROM ledger_tally_changes) AS tallies",
}

_PENDING = "SELECT EXISTS (SELECT 1 FROM job_tally_changes) OR EXISTS (SELECT 1 FROM ledger_tally_changes)"
_FOLD_JOBS = """
    WITH moved AS (
        DELETE FROM job_tally_changes
        WHERE ctid = ANY(ARRAY(SELECT ctid FROM job_tally_changes FOR UPDATE SKIP LOCKED))
        RETURNING library, state, delta
    )
    INSERT INTO job_tallies (library, state, total)
    SELECT library, state, sum(delta) FROM moved GROUP BY library, state
    ON CONFLICT (library, state) DO UPDATE SET total = job_tallies.total + excluded.total
"""
_FOLD_LEDGER = """
    WITH moved AS (
        DELETE FROM ledger_tally_changes
        WHERE ctid = ANY(ARRAY(SELECT ctid FROM ledger_tally_changes FOR UPDATE SKIP LOCKED))
        RETURNING library, outputs, input_bytes, output_bytes
    )
    INSERT INTO ledger_tallies (library, outputs, input_bytes, output_bytes)
    SELECT library, sum(outputs), sum(input_bytes), sum(output_bytes) FROM moved GROUP BY library
    ON CONFLICT (library) DO UPDATE SET
        outputs = ledger_tallies.outputs + excluded.outputs,
        input_bytes = ledger_tallies.input_bytes + excluded.input_bytes,
        output_bytes = ledger_tallies.output_bytes + excluded.output_bytes
"""


def fold(database: Database) -> bool:
    """Move PostgreSQL's pending tally changes into the tallies; return whether there were any.

    Nothing to do on SQLite, whose triggers update the tallies themselves.
    """
    if database.dialect != "postgres":
        return False
    row = database.execute(_PENDING).fetchone()
    if row is None or not row[0]:
        return False
    database.execute(_FOLD_JOBS)
    database.execute(_FOLD_LEDGER)
    return True
