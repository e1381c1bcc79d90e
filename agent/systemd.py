"""sd_notify for `Type=notify` units: READY, WATCHDOG pings, STOPPING. A no-op elsewhere."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one sd_notify message (e.g. 'READY=1'); return whether systemd was there to hear it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as connection:
        try:
            connection.connect(address)
            connection.sendall(message.encode())
        except OSError:
            return False
    return True


def watchdog_interval() -> float | None:
    """Return how often to ping the watchdog (half its timeout), or None if it is off."""
    microseconds = os.environ.get("WATCHDOG_USEC")
    if not microseconds or not microseconds.isdigit():
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(microseconds) / 2_000_000
