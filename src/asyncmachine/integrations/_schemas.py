"""JSON Schemas (draft 2020-12) of the integration messages.

The docs page "Machines over NATS" publishes the same schemas; a test
checks that both agree and that every message the library sends is valid.
"""

from __future__ import annotations

from typing import Any, Final

_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

_NAMES: Final[dict[str, Any]] = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
}
_TICKS: Final[dict[str, Any]] = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
}
_MACH_ID: Final[dict[str, Any]] = {
    "type": "string",
    "description": "The ID of the machine that answered.",
}
_ERROR: Final[dict[str, Any]] = {
    "type": "string",
    "description": "Why the request was refused or failed; nothing changed.",
}


def _schema(
    title: str, description: str, kind: str, props: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "$schema": _DRAFT,
        "title": title,
        "description": description,
        "type": "object",
        "properties": {"kind": {"const": kind}, **props},
        "required": ["kind", *extra.pop("required", [])],
        "additionalProperties": False,
        **extra,
    }


JSON_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "mutation_req": _schema(
        "MutationReq",
        "Add or remove states: exactly one of `add` and `remove`.",
        "am_req_mutation",
        {
            "add": {**_NAMES, "description": "States to add."},
            "remove": {**_NAMES, "description": "States to remove."},
            "args": {
                "type": "object",
                "description": "Arguments passed to the transition handlers.",
            },
        },
        oneOf=[{"required": ["add"]}, {"required": ["remove"]}],
    ),
    "mutation_resp": _schema(
        "MutationResp",
        "The result of a mutation: 0 executed, 1 canceled, 2 queued.",
        "am_resp_mutation",
        {
            "mach_id": _MACH_ID,
            "result": {"enum": [0, 1, 2]},
            "error": {**_ERROR, "description": _ERROR["description"] + " Result is 1."},
        },
        required=["result"],
    ),
    "waiting_req": _schema(
        "WaitingReq",
        "Wait until all `states` are active (or have reached the ticks in "
        "`time`, index by index), or until all `states_not` are inactive.",
        "am_req_waiting",
        {
            "states": {**_NAMES, "description": "States to wait for."},
            "states_not": {**_NAMES, "description": "States to wait to end."},
            "time": {
                **_TICKS,
                "description": "Minimal ticks of `states`, same length.",
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Seconds the machine keeps the wait (a Python "
                "extension; asyncmachine-go ignores it).",
            },
        },
        oneOf=[{"required": ["states"]}, {"required": ["states_not"]}],
        dependentSchemas={"time": {"required": ["states"]}},
    ),
    "waiting_resp": _schema(
        "WaitingResp",
        "A wait came true (or, with `error`, ended without).",
        "am_resp_waiting",
        {
            "mach_id": _MACH_ID,
            "states": {**_NAMES, "description": "The states waited for."},
            "states_not": {**_NAMES, "description": "The states waited to end."},
            "time": {**_TICKS, "description": "The current ticks of `states`."},
            "error": _ERROR,
        },
    ),
    "getter_req": _schema(
        "GetterReq",
        "Read data: each field asks for the same field of the response.",
        "am_req_getter",
        {
            "time": {**_NAMES, "description": "Ticks of these states."},
            "time_sum": {**_NAMES, "description": "The sum of their ticks."},
            "clocks": {**_NAMES, "description": "Their ticks, by name."},
            "tags": {"type": "boolean"},
            "export": {"type": "boolean"},
            "id": {"type": "boolean"},
            "parent_id": {"type": "boolean"},
        },
    ),
    "getter_resp": _schema(
        "GetterResp",
        "The data asked for; every requested field is present.",
        "am_resp_getter",
        {
            "mach_id": _MACH_ID,
            "time": _TICKS,
            "time_sum": {"type": "integer", "minimum": 0},
            "clocks": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "export": {
                "type": "object",
                "description": "The machine's export (`mach.export()`).",
                "properties": {
                    "id": {"type": "string"},
                    "parent_id": {"type": "string"},
                    "state_names": {"type": "array", "items": {"type": "string"}},
                    "time": _TICKS,
                    "queue_tick": {"type": "integer", "minimum": 0},
                    "machine_tick": {"type": "integer", "minimum": 0},
                },
                "required": ["id", "state_names", "time", "queue_tick"],
            },
            "id": {"type": "string"},
            "parent_id": {"type": "string"},
            "error": _ERROR,
        },
    ),
    "error_resp": _schema(
        "ErrorResp",
        "The answer to a message that is no request at all (malformed "
        "JSON, no or an unknown `kind`, too large).",
        "am_resp_error",
        {"mach_id": _MACH_ID, "error": _ERROR},
        required=["error"],
    ),
}
"""The schemas by name: `<kind>_req` / `<kind>_resp`, and `error_resp`."""
