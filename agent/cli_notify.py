"""`hb2r notify-test CONFIG`: one test message to each `notify:` target, and what became of each.

One try per target, no retries and no coalescing, so the answer comes at once: a target that
fails here would be retried by the agent, but is worth fixing. Targets are named by their
place and scheme (`notify[0] (ntfy)`), never by their URL. Exit 0 if every target took its
message, 1 if any did not or none is configured.
"""

from __future__ import annotations

from agent.cli_output import fail
from agent.config.models import Config
from agent.notify.deliver import deliver, target_name
from agent.notify.events import probe_message


def notify_test(config: Config) -> int:
    """Send the test message to every target, print one line for each; return the exit code."""
    if not config.notify:
        return fail("no notify targets in the config (see README: Notifications)")
    failed = 0
    for index, target in enumerate(config.notify):
        name = target_name(index, target.url)
        message = probe_message(host=config.host.name, target=name)
        delivery = deliver(target.url, title=message.title, body=message.body, severity=message.severity)
        if delivery.sent:
            print(f"{name}: sent")
        else:
            failed += 1
            print(f"{name}: FAILED: {delivery.reason}")
    total = len(config.notify)
    print(f"{total - failed} of {total} {'target' if total == 1 else 'targets'} took the test message")
    return 1 if failed else 0
