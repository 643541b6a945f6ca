"""A list of short texts (genres, people, tags) edited as tags instead of as a JSON array."""

import json
from typing import Any

from django import forms


class TagListWidget(forms.TextInput):
    """A text input holding "a, b, c"; offload/tags.js turns it into removable chips."""

    template_name = "django/forms/widgets/text.html"

    class Media:
        js = ["offload/tags.js"]

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"class": "offload-tags vTextField", "data-offload-tags": "1", **(attrs or {})})

    def format_value(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)


class TagListField(forms.Field):
    """A list of distinct, non-empty texts from "a, b, c"; each at most max_item_length characters."""

    widget = TagListWidget

    def __init__(self, *, max_items: int = 100, max_item_length: int = 200, **kwargs: Any) -> None:
        self.max_items = max_items
        self.max_item_length = max_item_length
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, str) and value.strip().startswith("["):
            # A JSON array, as the API takes it (and as the form held it before tags).
            try:
                value = json.loads(value)
            except ValueError:
                raise forms.ValidationError("Separate entries with commas.") from None
        if isinstance(value, list):
            parts = [str(v) for v in value]
        else:
            parts = (value or "").split(",")
        found: list[str] = []
        for part in (p.strip() for p in parts):
            if part and part not in found:
                found.append(part)
        return found

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} entries.")
        too_long = [v for v in value if len(v) > self.max_item_length]
        if too_long:
            raise forms.ValidationError(f"Each entry is at most {self.max_item_length} characters: {too_long[0][:40]}…")

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)
