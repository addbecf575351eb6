"""Debugger support: decoding Go am-dbg recordings (gob)."""

from ._gob import GobDecodeError, GobInterface, GobType, decode_gob, go_time

__all__ = ["GobDecodeError", "GobInterface", "GobType", "decode_gob", "go_time"]
