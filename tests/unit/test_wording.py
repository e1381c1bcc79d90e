"""One wording of a size for people (agent.wording.human_size): the gate's reasons, the daily
summary, backup and restore all say `3.2 GiB` the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import backup, gate
from agent.config.models import Limits
from agent.gate import Sample
from agent.wording import counted, human_size

GiB = 1024**3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1234, "1.21 KiB"),
        (int(3.2 * GiB), "3.2 GiB"),
        (5 * GiB, "5 GiB"),
        (int(123.4 * 1024**2), "123 MiB"),
        (3 * 1024**4, "3 TiB"),
        (-2 * GiB, "-2 GiB"),
    ],
)
def test_a_size_reads_as_people_write_it(value: int, text: str) -> None:
    assert human_size(value) == text


@pytest.mark.parametrize("size", [1234, 5 * GiB, int(1.5 * GiB)])
def test_a_backup_says_its_size_as_the_gate_says_one(size: int) -> None:
    info = backup.DatabaseInfo(Path("/var/backups/hb2r.db"), size, schema_version=1, jobs=0, ledger_entries=0, users=0)
    refused = gate.decide(
        sample=Sample(cpu_percent=0.0, memory_percent=0.0, available_memory=size, archive_free=100 * GiB),
        limits=Limits.model_validate({"min_free_memory": 100 * GiB}),
        running=0,
        cpu_count=2,
        minute_of_day=12 * 60,
        estimated_output=0,
        blocked_before=False,
    )

    assert f"/var/backups/hb2r.db: {human_size(size)}, " in backup.describe_backup(info)
    assert f"available memory {human_size(size)} is below" in refused.reasons[0]


@pytest.mark.parametrize(
    ("number", "one", "many", "text"),
    [(1, "job", None, "1 job"), (0, "job", None, "0 jobs"), (2, "ledger entry", "ledger entries", "2 ledger entries")],
)
def test_a_count_reads_as_people_write_it(number: int, one: str, many: str | None, text: str) -> None:
    assert counted(number, one, many) == text
