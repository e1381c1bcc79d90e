"""What a library's rules decide for one file, and what becomes of an output that saved too little.

PURE: facts (`agent.facts`), the source's size and a library's effective settings in, a
decision out. The planner's transcodes go through `ruled` once their facts are known (the
engine and `hb2r plan` read them by fingerprint, `agent.probing`); the dispatcher calls
`after_encode` (see the README's Rules).

`ruled`: a transcode becomes a Copy (publish the source, under its own extension), a Skip
(reported with the rule's name) or stays a Transcode that says why and names the preset a rule
or `hdr:` asked for. A transcode whose facts are not known yet (its fingerprint is not read:
the pass's budget) stays as it is; it is not queued without a fingerprint, so a later pass
decides it. A file ffprobe cannot read is not skipped: it is encoded with the library's preset
as before rules existed, and its transcode says why its facts are missing (`hb2r plan`'s line,
the pass's log, `hb2r plan --json`'s `facts_error`); HandBrakeCLI is the judge of whether it
can be read, and its job fails with HandBrakeCLI's reason (`hb2r jobs`) if not.

`decide`: the first rule whose `when:` holds decides (encode, copy or skip); none: encode with
the library's preset. Then HDR: an encode of an HDR or Dolby Vision source that no rule asked
for by preset name goes by `hdr:` instead (copy, skip, or encode with the named preset), so an
HDR source is never encoded with an 8-bit preset by default. A file with no facts (not probed,
or the probe failed) is encoded as before rules existed: rules decide only on what is known,
and a failed probe is reported on its own.

`after_encode`: a verified output that is not at least `min_saving` % smaller than its source
goes by `larger_output.then`: copy (publish the source instead), keep (publish the encode), or
skip (publish nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.config.models import Library
from agent.config.rules import LargerOutput, Rule, When
from agent.domain import Copy, Skip, Transcode
from agent.facts import MediaFacts
from agent.identity import copy_output_path
from agent.store.media_facts import StoredFacts

Action = Literal["encode", "copy", "skip"]


@dataclass(frozen=True)
class Decision:
    """What to do with a file: `action`, the `preset` to encode with (encode only), and why."""

    action: Action
    preset: str | None
    reason: str  # for `hb2r plan`: `rule "already efficient"`, `hdr: copy`, `no rule matched`
    rule: str | None = None  # the rule that chose it, if one did


def decide(facts: MediaFacts | None, *, size: int, rules: tuple[Rule, ...], hdr: str, library_preset: str) -> Decision:
    """Given a file's facts (None: unknown) and size, a library's rules, its `hdr:` setting and its
    preset's name, return what to do with the file."""
    if facts is None:
        return Decision("encode", library_preset, "no media facts: encoded with the library's preset")
    for rule in rules:
        if matches(rule.when, facts, size=size):
            if rule.action != "encode":
                return Decision(rule.action, None, f'rule "{rule.name}"', rule.name)
            if rule.preset is not None:  # asked for by name: HDR or not
                return Decision("encode", rule.preset, f'rule "{rule.name}"', rule.name)
            return _unless_hdr(
                facts, hdr=hdr, decision=Decision("encode", library_preset, f'rule "{rule.name}"', rule.name)
            )
    return _unless_hdr(facts, hdr=hdr, decision=Decision("encode", library_preset, "no rule matched"))


def matches(when: When, facts: MediaFacts, *, size: int) -> bool:
    """Return whether every condition of `when` holds for the facts and the file's size."""
    video = facts.video
    bitrate = facts.effective_video_bitrate
    checks = (
        when.codec is None or (video is not None and video.codec.lower() in when.codec),
        when.bitrate_below is None or (bitrate is not None and bitrate < when.bitrate_below),
        when.height_at_most is None or (video is not None and video.height <= when.height_at_most),
        when.size_below is None or size < when.size_below,
        when.hdr is None or (video is not None and video.hdr.value in when.hdr),
        when.container is None or facts.container.lower() in when.container,
    )
    return all(checks)


def _unless_hdr(facts: MediaFacts, *, hdr: str, decision: Decision) -> Decision:
    video = facts.video
    if video is None or not video.hdr.is_hdr:
        return decision
    reason = f"{_HDR_NAMES[video.hdr.value]}, hdr: {hdr}"
    if hdr == "copy":
        return Decision("copy", None, reason, decision.rule)
    if hdr == "skip":
        return Decision("skip", None, reason, decision.rule)
    return Decision("encode", hdr, reason, decision.rule)


_HDR_NAMES = {"hlg": "HLG", "pq": "PQ", "hdr10": "HDR10", "hdr10+": "HDR10+", "dolby_vision": "Dolby Vision"}


@dataclass(frozen=True)
class AfterEncode:
    """What to publish once an encode is verified: the encode, the source instead, or nothing."""

    publish: Literal["encode", "source", "nothing"]
    reason: str
    then: str = ""  # the `larger_output.then` that applied: the output saved too little ("": it did not)


def after_encode(*, source_size: int, output_size: int, settings: LargerOutput) -> AfterEncode:
    """Given the source's and the verified output's sizes and `larger_output`, return what to publish."""
    saved = 1 - output_size / source_size if source_size > 0 else 0.0
    if source_size > 0 and output_size * 100 <= source_size * (100 - settings.min_saving):  # exact, in integers
        return AfterEncode("encode", f"the output saves {saved:.0%}")
    said = (
        f"the output saves {saved:.0%}, less than {settings.min_saving}%"
        if saved >= 0
        else (f"the output is {-saved:.0%} larger than its source")
    )
    publish: dict[str, Literal["encode", "source", "nothing"]] = {"copy": "source", "keep": "encode", "skip": "nothing"}
    return AfterEncode(publish[settings.then], f"{said}: larger_output: {settings.then}", settings.then)


def ruled(action: Transcode, known: StoredFacts | None, *, library: Library) -> Transcode | Copy | Skip:
    """Given a transcode the planner decided, what is known of its source's content (None: not
    read yet) and its library's effective settings, return what the rules make of it."""
    if known is None:
        return action
    rel_path = action.source.rel_path
    if known.facts is None:  # encoded with the library's preset, as before rules existed, saying why
        said = (known.error or "no media facts").strip().splitlines() or ["no media facts"]
        return action._replace(why=f"{said[0]}: encoded with the library's preset")
    decision = decide(
        known.facts, size=action.source.size, rules=library.rules or (), hdr=library.hdr or "copy",
        library_preset=library.preset,
    )  # fmt: skip
    if decision.action == "encode" and decision.rule is None and decision.preset in (None, library.preset):
        return action  # no rule matched and no HDR: the library's preset, as before rules existed
    why = f"{summary(known.facts)}: {decision.reason}"
    if decision.action == "copy":
        return Copy(action.library, action.source, copy_output_path(action.output_path, rel_path), why, decision.rule)
    if decision.action == "skip":
        return Skip(action.library, rel_path, why, by_rule=True)
    preset = None if decision.preset == library.preset else decision.preset
    return action._replace(why=why, preset=preset)


def summary(facts: MediaFacts) -> str:
    """Return the facts a person reads a decision by: `hevc 2.1 Mb/s`, `hevc 10-bit 12.0 Mb/s` (an
    HDR kind is named by the decision itself: `HDR10, hdr: copy`)."""
    video = facts.video
    if video is None:
        return f"{facts.container}, no video"
    parts = [video.codec]
    if video.bit_depth > 8:
        parts.append(f"{video.bit_depth}-bit")
    bitrate = facts.effective_video_bitrate
    if bitrate is not None:
        parts.append(f"{bitrate / 1e6:.1f} Mb/s" if bitrate >= 1_000_000 else f"{bitrate / 1e3:.0f} kb/s")
    return " ".join(parts)
