"""Pagination of the API's lists."""

from rest_framework.pagination import CursorPagination


class JobCursorPagination(CursorPagination):
    """Newest first by cursor: rows arriving at the top never shift a page a client is reading."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
