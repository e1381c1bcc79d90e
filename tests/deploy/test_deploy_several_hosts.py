"""The playbooks against three real systemd hosts: one PostgreSQL host (group hb2r_database, role
hb2r_postgres) and two agent hosts (group hb2r), each a Debian 12 container booted with
systemd-nspawn from the same cached root (tests/deploy/testhost.py) and driven with
ansible-playbook over SSH, as an operator with several machines would.

The containers share this machine's network, so PostgreSQL listens on 127.0.0.1 and a free port
(the "host's address" of every container here) and the agents reach it there; each agent's
service listens on a port of its own.

Several agents share one database (jobs claimed under leases, one host at a time plans): the
first agent, agent-a, is deployed and runs on the database (and encodes); the second, agent-b,
then joins it, with agent-a left as it was.

The tests run in order on the same hosts: the first deploy and a second that changes nothing;
agent-b joining; a wrong password refused on both agents with the running one left exactly as it
was; a config change on one agent; backup.yml with a pg_dump of the shared database.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.passwords import hash_password
from tests.support.clips import make_clip
from tests.support.ports import free_port
from tests.support.waiting import wait_for

from .deployment import ADMIN_PASSWORD, REPO, explain, run_playbook
from .testhost import TestHost, boot_test_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting systemd-nspawn hosts needs root")

ARCHIVE = "/srv/archive"
# The same library name on both agents, at a path of each host's own (as NFS mounts would be).
SOURCES = {"agent-a": "/mnt/nas-a/tv", "agent-b": "/srv/media/television"}
MAX_JOBS = {"agent-a": 1, "agent-b": 2}
PASSWORD_FILE = "/etc/hb2r/db.password"
# What the agent's own connect code does from an agent's host, as the agent's user, with its password file.
PROBE = """
import sys
from pathlib import Path
from agent.store.postgres import connect_postgres
database = connect_postgres(sys.argv[1], password_file=Path(sys.argv[2]))
print(database.execute("SELECT current_user, current_database()").fetchone())
database.execute("CREATE TABLE deploy_probe (id integer)")  # the store makes its schema in this database
database.execute("DROP TABLE deploy_probe")
database.close()
"""


@dataclass
class SeveralHosts:
    database: TestHost
    agents: dict[str, TestHost]
    workdir: Path
    postgres_port: int
    password: str
    listen_ports: dict[str, int]
    admin_hash: str  # made once: a new salt would be a new config

    @property
    def store_url(self) -> str:
        return f"postgresql://hb2r@127.0.0.1:{self.postgres_port}/hb2r"

    def inventory(self, *, agent_vars: dict[str, Any] | None = None) -> Path:
        """An inventory as in playbooks/inventory.several-hosts.example.yml, pointing at the three containers."""
        agents = {
            name: {
                **ssh_vars(host),
                "hb2r_libraries": [
                    {"name": "tv", "source": SOURCES[name], "output": "TV", "preset": "tv", "stable_after": "1s"}
                ],
                "hb2r_listen": f"127.0.0.1:{self.listen_ports[name]}",
                "hb2r_limits": {
                    "cpu_percent": 100,
                    "memory_percent": 100,
                    "min_free_memory": "64MiB",
                    "min_free_disk": "1MiB",
                    "max_jobs": MAX_JOBS[name],
                },
                **(agent_vars or {}),
            }
            for name, host in self.agents.items()
        }
        common = {
            "hb2r_store_password": self.password,
            "hb2r_postgres_port": self.postgres_port,
            "hb2r_archive": ARCHIVE,
            "hb2r_presets": {"tv": {"handbrake": "Very Fast 480p30", "container": "mkv"}},
            "hb2r_scan_interval": "2s",
            "hb2r_users": [{"name": "admin", "role": "admin", "password_hash": self.admin_hash}],
            "hb2r_memory_max": "2G",
            "hb2r_cpu_quota": "200%",
            "hb2r_watchdog_sec": "30s",
            "hb2r_health_timeout": 60,
        }
        inventory = {
            "all": {"vars": common},
            "hb2r_database": {"hosts": {"database": ssh_vars(self.database)}},
            "hb2r": {"hosts": agents},
        }
        path = self.workdir / f"inventory-{len(list(self.workdir.glob('inventory-*.yml')))}.yml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return path

    def deploy(
        self, inventory: Path, playbook: str = "deploy.yml", *, limit: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_playbook(inventory, REPO / "playbooks" / playbook, *(("--limit", limit) if limit else ()))


def ssh_vars(host: TestHost) -> dict[str, Any]:
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": host.ssh_port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(host.private_key),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }


def recaps(
    result: subprocess.CompletedProcess[str], hosts: tuple[str, ...] = ("database", "agent-a", "agent-b")
) -> dict[str, dict[str, int]]:
    """Return the PLAY RECAP counters of every host."""
    found = {
        name: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
        for name, counters in re.findall(r"^([\w.-]+)\s*:\s*((?:\w+=\d+\s*)+)$", result.stdout, re.MULTILINE)
    }
    assert set(found) == set(hosts), explain(result)
    return found


def recap_changes(
    result: subprocess.CompletedProcess[str], hosts: tuple[str, ...] = ("database", "agent-a", "agent-b")
) -> dict[str, int]:
    return {name: counters["changed"] for name, counters in recaps(result, hosts).items()}


FIRST = "hb2r_database,agent-a"  # --limit: the database and the agent that runs on it


def database_sql(several: SeveralHosts, query: str) -> str:
    """Run query in hb2r's database on the database host, as the postgres superuser; return the rows as text."""
    return inside(several.database, "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A",
                  "-p", str(several.postgres_port), "-d", "hb2r", "-c", query)  # fmt: skip


def inside(host: TestHost, *argv: str) -> str:
    return host.run(*argv).stdout.strip()


def agent_state(host: TestHost) -> tuple[str, ...]:
    """What a failed deploy must leave alone: the agent's process, release, config and password file."""
    return (
        inside(host, "systemctl", "show", "-p", "MainPID", "--value", "hb2r"),
        inside(host, "readlink", "-f", "/opt/hb2r/current"),
        inside(host, "sha256sum", "/etc/hb2r/config.yaml", PASSWORD_FILE),
    )


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeveralHosts]:
    workdir = tmp_path_factory.mktemp("several")
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(boot_test_host(workdir / "database", name="hb2r-db"))
        agents = {name: stack.enter_context(boot_test_host(workdir / name, name=f"hb2r-{name}")) for name in SOURCES}
        for name, host in agents.items():
            host.run("mkdir", "-p", SOURCES[name], ARCHIVE)
            host.run("chmod", "0777", ARCHIVE)
        yield SeveralHosts(
            database=database,
            agents=agents,
            workdir=workdir,
            postgres_port=free_port(),
            # A quote and a space: the role's SQL and the password file must carry it as it is.
            password=f"it's a secret {secrets.token_hex(8)}",
            listen_ports={name: free_port() for name in agents},
            admin_hash=hash_password(ADMIN_PASSWORD, rounds=4),
        )


def test_one_postgresql_and_an_agent_on_it(several: SeveralHosts, tmp_path: Path) -> None:
    first = several.deploy(several.inventory(), limit=FIRST)
    assert first.returncode == 0, explain(first)
    assert several.password not in first.stdout + first.stderr

    # PostgreSQL runs on the database host, listening on its address and the chosen port, with
    # password logins for the agents to hb2r's database only.
    database = several.database
    cluster = inside(database, "pg_lsclusters", "--no-header").split()
    assert cluster[3] == "online" and cluster[2] == str(several.postgres_port), cluster
    assert inside(database, "systemctl", "is-enabled", f"postgresql@{cluster[0]}-{cluster[1]}") == "enabled"
    hba = inside(database, "cat", f"/etc/postgresql/{cluster[0]}/{cluster[1]}/pg_hba.conf").splitlines()
    assert hba[1].split() == ["host", "hb2r", "hb2r", "127.0.0.1/32", "scram-sha-256"], hba[:4]

    # The agent runs, answers /health, and its config is its own: its host name, its own path for
    # the library, its own limits, the shared store's URL with no password in it.
    name, host = "agent-a", several.agents["agent-a"]
    assert inside(host, "systemctl", "is-active", "hb2r") == "active"
    health = inside(host, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://127.0.0.1:{several.listen_ports[name]}/health")  # fmt: skip
    assert health == "200"
    config = yaml.safe_load(inside(host, "cat", "/etc/hb2r/config.yaml"))
    assert config["host"] == {"name": name}
    assert config["store"] == {"url": several.store_url, "password_file": PASSWORD_FILE}
    assert config["libraries"][0]["name"] == "tv" and config["libraries"][0]["source"] == SOURCES[name]
    assert config["limits"]["max_jobs"] == MAX_JOBS[name]
    assert several.password not in inside(host, "cat", "/etc/hb2r/config.yaml", "/etc/hb2r/environment")
    # The password is in a file only the agent's user reads.
    assert inside(host, "stat", "-c", "%U %G %a", PASSWORD_FILE) == "hb2r hb2r 600"
    assert host.run("cat", PASSWORD_FILE).stdout == several.password + "\n"
    # The release has the driver: from this host, as the agent's user, with that file, the
    # agent's own connect code logs in to the database and may make tables there.
    probe = inside(host, "runuser", "-u", "hb2r", "--", "/opt/hb2r/current/venv/bin/python", "-c", PROBE,
                   several.store_url, PASSWORD_FILE)  # fmt: skip
    assert probe == "('hb2r', 'hb2r')"

    # The agent keeps its state in PostgreSQL: it is connected, and a clip it encodes is in the ledger there.
    assert "hb2r run on agent-a" in database_sql(several, "SELECT application_name FROM pg_stat_activity")
    host.copy_in(make_clip(tmp_path / "first.mkv", seconds=2), f"{SOURCES[name]}/first.mkv")
    wait_for(
        lambda: database_sql(several, "SELECT rel_path FROM ledger") == "first.mkv",
        what="the clip's ledger row in PostgreSQL",
        explain=lambda: inside(host, "journalctl", "-u", "hb2r", "--no-pager", "-o", "cat", "-n", "30"),
        interval=0.5,
    )
    assert inside(host, "ls", f"{ARCHIVE}/TV") == "first.mkv"

    # A second deploy with nothing changed changes nothing.
    again = several.deploy(several.inventory(), limit=FIRST)
    assert again.returncode == 0, explain(again)
    assert recap_changes(again, ("database", "agent-a")) == {"database": 0, "agent-a": 0}, explain(again)


def test_a_second_agent_joins_the_database_and_runs_beside_the_first(several: SeveralHosts) -> None:
    running = agent_state(several.agents["agent-a"])

    result = several.deploy(several.inventory())

    assert result.returncode == 0, explain(result)
    assert recaps(result)["agent-b"]["failed"] == 0, explain(result)
    assert recap_changes(result)["database"] == 0 and recap_changes(result)["agent-a"] == 0, explain(result)
    assert agent_state(several.agents["agent-a"]) == running
    # Each agent reports itself in the hosts table every lease/3; one of them plans.
    wait_for(
        lambda: database_sql(several, "SELECT name FROM hosts ORDER BY name").split() == ["agent-a", "agent-b"],
        what="both agents in the hosts table",
        explain=lambda: inside(
            several.agents["agent-b"], "journalctl", "-u", "hb2r", "--no-pager", "-o", "cat", "-n", "30"
        ),
        interval=0.5,
    )
    assert database_sql(several, "SELECT host FROM leader") in ("agent-a", "agent-b")
    assert "hb2r run on agent-b" in database_sql(several, "SELECT application_name FROM pg_stat_activity")
    assert several.password not in result.stdout + result.stderr


def test_a_wrong_database_password_fails_clearly_and_leaves_the_agents_alone(several: SeveralHosts) -> None:
    before = agent_state(several.agents["agent-a"])
    wrong = f"not-the-password-{secrets.token_hex(4)}"

    result = several.deploy(several.inventory(agent_vars={"hb2r_store_password": wrong}))

    assert result.returncode != 0
    output = result.stdout + result.stderr
    for name in several.agents:
        assert f"{name} cannot use the store {several.store_url}" in output, explain(result)
    assert 'password authentication failed for user "hb2r"' in output, explain(result)
    assert "Check hb2r_store_password" in output
    assert wrong not in output and several.password not in output
    assert recap_changes(result)["database"] == 0, explain(result)
    assert agent_state(several.agents["agent-a"]) == before


def test_a_config_change_restarts_the_agent_and_backs_up_no_shared_database(several: SeveralHosts) -> None:
    agent_a = several.agents["agent-a"]
    before = agent_state(agent_a)
    inventory = several.inventory()
    data = yaml.safe_load(inventory.read_text())
    data["hb2r"]["hosts"]["agent-a"]["hb2r_limits"]["max_jobs"] = 3
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))

    result = several.deploy(inventory, limit=FIRST)

    assert result.returncode == 0, explain(result)
    assert recap_changes(result, ("database", "agent-a"))["database"] == 0, explain(result)
    assert agent_state(agent_a)[0] != before[0]  # restarted with its new config
    assert yaml.safe_load(inside(agent_a, "cat", "/etc/hb2r/config.yaml"))["limits"]["max_jobs"] == 3
    # The state is in the shared database, which a deploy neither backs up nor puts back.
    assert inside(agent_a, "find", "/var/backups/hb2r", "-name", "*.tar.gz") == ""
    assert "hb2r run on agent-a" in database_sql(several, "SELECT application_name FROM pg_stat_activity")


def test_backup_playbook_dumps_the_shared_database_with_the_hosts_files(several: SeveralHosts) -> None:
    agent_a = several.agents["agent-a"]

    result = several.deploy(several.inventory(), playbook="backup.yml", limit="agent-a")

    assert result.returncode == 0, explain(result)
    (tarball,) = inside(agent_a, "sh", "-c", "ls /var/backups/hb2r/*.tar.gz").split()
    assert inside(agent_a, "stat", "-c", "%U %a", tarball) == "root 600"
    members = set(inside(agent_a, "tar", "-tzf", tarball).split())
    assert {"hb2r.pgdump", "etc/hb2r/config.yaml", "etc/hb2r/db.password"} <= members, members
    listing = inside(agent_a, "sh", "-c", f"tar -xzOf {tarball} hb2r.pgdump | pg_restore --list")
    assert "TABLE public ledger" in listing
    assert several.password not in result.stdout + result.stderr
