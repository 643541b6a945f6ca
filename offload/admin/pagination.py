"""The admin's long lists count their rows only so far."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class CappedCountPaginator(Paginator):
    """A paginator that counts at most CAP rows: a large list's page costs the same however long the table.

    The page numbers stop at the cap; the list says "more than N" (admin/offload/job/pagination.html).
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # COUNT(*) over a LIMITed subquery: reads at most CAP + 1 index entries.
        return self.object_list[: self.CAP + 1].count()
