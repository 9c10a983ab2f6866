"""Durations as people write them: `24h`, `90m`, `1d12h`, `PT90M`, `P1DT2H`, or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"^(?:(\d+(?:\.\d+)?)([wdhms]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str | int | float) -> float:
    """Seconds, or ValueError saying what a duration looks like."""
    if isinstance(text, bool):  # an int to Python, never a duration
        raise ValueError(f"{text!r} is not a duration; write e.g. 24h, 90m, 1d12h, PT90M or a number of seconds")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = text.strip()
        lowered = value.lower()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value)
        elif _SHORT.fullmatch(lowered):
            seconds = sum(float(amount) * _UNITS[unit] for amount, unit in _PART.findall(lowered))
        # ISO 8601 wants a component after P, and after T when there is one.
        elif (match := _ISO.fullmatch(value.upper())) and value.upper() != "P" and not value.upper().endswith("T"):
            weeks, days, hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
            seconds = weeks * 604800 + days * 86400 + hours * 3600 + minutes * 60 + secs
        else:
            raise ValueError(f"{text!r} is not a duration; write e.g. 24h, 90m, 1d12h, PT90M or a number of seconds")
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds
