"""The schema's text patterns refuse exactly what DRF's text fields refuse, read as OpenAPI reads them.

An OpenAPI `pattern` is an ECMA-262 regular expression. There `\\s` is not Python's whitespace:
it leaves out U+001C–U+001F and U+0085, which Python's str.strip() (so DRF's trimming) removes,
and takes in U+FEFF, which it keeps. A schema that says "\\x1f" is a fine genre, answered with
400 "This field may not be blank.", tells a client valid input is invalid.
"""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from offload.api.serializers import DescriptiveSerializer

# ECMA-262's \s (WhiteSpace and LineTerminator), which a schema's reader applies.
ECMA_SPACE = "[\\t\\n\\x0b\\x0c\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
ECMA_NOT_SPACE = ECMA_SPACE.replace("[", "[^", 1)


def as_ecma(pattern: str) -> re.Pattern:
    """The pattern as an ECMA-262 engine reads it (only \\s and \\S differ for the patterns used here)."""
    pattern = re.sub(r"\[\^([^\]]*)\\s", lambda m: "[^" + m.group(1) + ECMA_SPACE[1:-1], pattern)
    pattern = pattern.replace("\\s", ECMA_SPACE).replace("\\S", ECMA_NOT_SPACE)
    return re.compile(pattern)


def accepted(field: serializers.CharField, text: str) -> bool:
    try:
        field.run_validation(text)
    except serializers.ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def genre_pattern() -> str:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return schema["components"]["schemas"]["PatchedDescriptiveRequest"]["properties"]["genres"]["items"]["pattern"]


def test_a_text_fields_pattern_accepts_exactly_the_one_character_values_drf_accepts(genre_pattern):
    pattern = as_ecma(genre_pattern)
    field = DescriptiveSerializer().fields["genres"].child
    disagree = [
        hex(code)
        for code in range(0x10000)
        if not 0xD800 <= code <= 0xDFFF and bool(pattern.search(chr(code))) != accepted(field, chr(code))
    ]
    assert disagree == []


@pytest.mark.parametrize("text", ["\x1f", " \x85 ", "\u3000\x1c", "Drama", "\ufeff", "a\x00b"])
def test_the_pattern_and_the_field_agree_on_longer_values(genre_pattern, text):
    field = DescriptiveSerializer().fields["genres"].child
    assert bool(as_ecma(genre_pattern).search(text)) == accepted(field, text)
