"""Notifications: telling an operator, through Apprise, when something needs them.

`events` names what can be told and words each message (pure); `policy` decides which
targets want an event and coalesces repeats (pure); `deliver` sends one message to one URL
with Apprise (blocking, in a thread); `notifier` runs the sending for the agent: one lane per
target, retries with backoff, logs and metrics, never on the event loop's time.
"""
