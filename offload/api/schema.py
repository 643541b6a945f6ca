"""The OpenAPI schema's errors: each status the API answers is declared where it can happen.

drf-spectacular documents success answers only. Clients (and the schema fuzzer in
tests/fuzz/) rely on the schema listing the errors too, so every operation gains the ones
its middleware and views produce, each with the JSON body offload.api.errors writes.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, IsAdminUser

from offload.api.permissions import RulePermission

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# DRF's validation errors: field name → messages, or {"detail": …} for a body that does not parse.
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {},
    "description": "Field name → list of messages (`non_field_errors` for the whole input), or `detail`.",
}


def _character_class(codes: list[int]) -> str:
    """The code points as the body of a regex class, runs joined: "\\u0009-\\u000d\\u0020"."""
    runs: list[list[int]] = []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in runs)


# What str.strip() removes, so what DRF trims before it refuses a blank, spelled out. An OpenAPI
# pattern is an ECMA-262 regex, whose \s is not Python's: it leaves out U+001C–U+001F and U+0085
# and takes in U+FEFF. No whitespace lies beyond the Basic Multilingual Plane.
TRIMMED = _character_class([code for code in range(0x10000) if chr(code).isspace()])
NOT_BLANK_PATTERN = f"^[^\\x00]*[^\\x00{TRIMMED}][^\\x00]*$"


class OffloadAutoSchema(AutoSchema):
    """AutoSchema plus 400, 401, 403, 404 and 429 on the operations that can answer them."""

    def _map_serializer_field(self, field, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        # What DRF's fields refuse, the schema says: no NUL in a string (every CharField), nothing
        # blank once trimmed where blanks are refused, no empty list where allow_empty is off.
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request":
            plain_text = schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(schema)
            if isinstance(field, serializers.CharField) and plain_text:
                refuses_blank = not field.allow_blank and field.trim_whitespace
                schema["pattern"] = NOT_BLANK_PATTERN if refuses_blank else "^[^\\x00]*$"
            if isinstance(field, serializers.ListField) and not field.allow_empty:
                schema.setdefault("minItems", 1)
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        # A filter whose values come from a registry (the job kinds) lists them: the schema then
        # refuses what the filter refuses. drf-spectacular calls no choices callable itself.
        parameters = super()._get_filter_parameters()
        filterset = getattr(self.view, "filterset_class", None)
        for parameter in parameters:
            values = getattr(filterset.base_filters.get(parameter["name"]), "schema_enum", None) if filterset else None
            if values is not None:
                parameter["schema"]["enum"] = list(values())
        return parameters

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors: dict[str, tuple[dict[str, Any], str]] = {}
        if self._get_request_body() is not None:
            errors["400"] = (FIELD_ERRORS, "The input is invalid.")
        elif (
            self.method == "GET"
            and self._is_list_view()
            and (self._get_filter_parameters() or self.get_override_parameters())
        ):
            # A list filter with a value it cannot take (an id that is no number, say).
            errors["400"] = (FIELD_ERRORS, "A filter's value is invalid.")
        if self.get_auth() and {} not in self.get_auth():
            errors["401"] = (DETAIL, "No credentials, or invalid ones.")
        # A missing (or not visible) object, or a page past the last one.
        if "{" in self.path or (self.method == "GET" and self._get_paginator() and self._is_list_view()):
            errors["404"] = (DETAIL, "Not found.")
        # Staff-only operations (the queues) refuse everyone else; a change refuses whoever lacks
        # the permission it names (docs/api.md, Permissions).
        permissions = self.view.get_permissions()
        if any(isinstance(p, IsAdminUser) for p in permissions):
            errors["403"] = (DETAIL, "Staff only, with the permission the change needs.")
        elif self.method not in SAFE_METHODS and any(isinstance(p, RulePermission) for p in permissions):
            errors["403"] = (DETAIL, "The change needs a permission the user lacks.")
        # Every API request passes the rate limiter (offload/ratelimit.py, offload/web/throttle.py).
        errors["429"] = (DETAIL, "Over the rate limit; see the Retry-After header.")
        for code, (schema, description) in errors.items():
            if code not in responses:
                responses[code] = {**self._get_response_for_code(dict(schema), code), "description": description}
        return responses
