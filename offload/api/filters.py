"""List filters (django-filter): a bad value answers 400 with the field's error."""

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema_field

from offload.jobs import kinds
from offload.models import Job, JobStatus, MediaItem, MediaKind

# A row id: ASCII digits, within a bigint.
MAX_ID = 2**63 - 1


class IdField(forms.IntegerField):
    """A row's id: a positive whole number written in ASCII digits."""

    default_error_messages = {"invalid": "A valid id (a positive whole number) is required."}

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_python(self, value):
        # int() accepts other scripts' digits and "1_000"; an id is plain ASCII.
        if value not in self.empty_values and not str(value).strip().isascii():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


# The schema says what IdField takes: a number like 1.5 or 0 is refused, so the schema forbids it too.
@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    field_class = IdField


def kind_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in kinds.names()]


class StrictFilterSet(django_filters.FilterSet):
    """django-filter's, except that a blank value is refused where the schema forbids one (a choice, an id).

    django-filter reads `?status=` as "no filter"; the schema's enum has no "" in it.
    """

    def is_valid(self) -> bool:
        valid = super().is_valid()
        blank = [
            name
            for name, field in self.filters.items()
            if not isinstance(field, django_filters.CharFilter) and self.data.get(name) == ""
        ]
        for name in blank:
            self.form.add_error(name, "This field may not be blank.")
        return valid and not blank


class MediaFilter(StrictFilterSet):
    """`?kind=&library=&q=` on the media list."""

    kind = django_filters.ChoiceFilter(choices=MediaKind.choices)
    library = IdFilter(field_name="library_id", help_text="A library's id.")
    q = django_filters.CharFilter(method="filter_q", help_text="Part of the title or the file's path.")

    class Meta:
        model = MediaItem
        fields = ["kind", "library", "q"]

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(title__icontains=value) | Q(relative_path__icontains=value))


class KindFilter(django_filters.ChoiceFilter):
    """A registered job kind; the schema lists them (offload.api.schema reads `schema_enum`)."""

    schema_enum = staticmethod(kinds.names)

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=kind_choices, **kwargs)


class JobFilter(StrictFilterSet):
    """`?status=&kind=` on the job list."""

    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    kind = KindFilter()

    class Meta:
        model = Job
        fields = ["status", "kind"]
