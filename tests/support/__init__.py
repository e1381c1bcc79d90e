"""What the tests and the benchmarks share: one copy of each helper, so that a fix lands everywhere.

- `ports`: a free loopback port.
- `clips`: short real clips made with ffmpeg (testsrc2 + sine); `media_clips`: clips that carry what
  media-aware rules look at (HEVC, HDR10, several tracks).
- `configs`: the one-library agent config the end-to-end tests and benchmarks start from.
- `waiting`: polling with a deadline (never a fixed sleep), and calls that must not block.
- `agent_process`: `hb2r run` as a process, and its stop (SIGTERM, a deadline, then SIGKILL, with the log).
- `postgres`, `multihost`, `multihost_checks`: a throwaway PostgreSQL cluster; several hosts on this machine.
- `notify_receiver`: a loopback HTTP receiver for notifications.

Test modules import from here (`from tests.support.ports import free_port`), never from another test
module; bench scripts put the checkout on sys.path and import the same way. Pytest finds `tests` from
the checkout's root (`pythonpath = ["."]` in pyproject.toml).
"""
