"""Pagination of the API's lists, with the schema saying what the validation takes."""

from datetime import UTC

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.pagination import CursorPagination, PageNumberPagination

from offload.models import Job


class JobCursorPagination(CursorPagination):
    """Newest first by cursor: rows arriving at the top never shift a page a client is reading."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        """DRF's cursor, its position checked as a time the column holds: anything else is 404 "Invalid cursor"."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                when = Job._meta.get_field("created_at").to_python(cursor.position)
                # A time PostgreSQL compares with: no NUL, and an offset may not carry it past year 9999.
                if when is None or "\x00" in cursor.position or when.astimezone(UTC).year > 9999:
                    raise ValueError(cursor.position)
            except (ValidationError, ValueError, OverflowError):
                raise NotFound(self.invalid_cursor_message) from None
        return cursor

    def get_page_size(self, request) -> int:
        """page_size as the schema has it: one whole number of at least 1 (400 otherwise), at most max_page_size."""
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        raw = values[0]
        if len(values) > 1 or not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise BadRequest({self.page_size_query_param: ["A whole number of at least 1, given once."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                largest = self.max_page_size
                parameter["description"] = f"Rows per page: at least 1; more than {largest} gives {largest}."
        return parameters


class PageNumbers(PageNumberPagination):
    """DRF's page numbers; the schema says a page is at least 1 (a page past the last answers 404)."""

    def get_page_number(self, request, paginator):
        # DRF reads `?page=` as page 1; the schema's integer has no empty spelling: 404 "Invalid page".
        number = super().get_page_number(request, paginator)
        return "" if request.query_params.get(self.page_query_param) == "" else number

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters
