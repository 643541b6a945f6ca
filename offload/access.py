"""Access: the only way code fetches a library, item or job on a user's behalf.

Another user's objects answer "not found", never "forbidden", so ids reveal nothing.
"""

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from offload.jobs import kinds
from offload.models import Job, Library, MediaItem


@dataclass(frozen=True)
class JobVisibility:
    """The one rule for who sees a job: staff see every job; anyone else the jobs they asked
    for, internal kinds excepted. The API, the admin, the live stream and its replay all ask here.
    """

    everything: bool
    user_id: int | None
    hidden_kinds: tuple[str, ...]

    def q(self, prefix: str = "") -> Q:
        """The rule as a filter on Job (prefix "job__" to filter rows that point at a job)."""
        if self.everything:
            return Q()
        return Q(**{f"{prefix}requested_by_id": self.user_id}) & ~Q(**{f"{prefix}kind__in": self.hidden_kinds})

    def admits(self, requested_by: int | None, kind: str) -> bool:
        """The rule for one job known by its requester and kind (a live event)."""
        return self.everything or (requested_by == self.user_id and kind not in self.hidden_kinds)


def job_visibility(user) -> JobVisibility:
    return JobVisibility(bool(user.is_staff), user.pk, tuple(kinds.internal_names()))


def libraries_for(user) -> QuerySet[Library]:
    qs = Library.objects.all()
    return qs if user.is_staff else qs.filter(owner=user)


def media_for(user) -> QuerySet[MediaItem]:
    qs = MediaItem.objects.select_related("library")
    return qs if user.is_staff else qs.filter(library__owner=user)


def jobs_for(user) -> QuerySet[Job]:
    return Job.objects.filter(job_visibility(user).q())


def _get(qs: QuerySet, pk, what: str):
    try:
        return qs.get(pk=int(pk))
    except (TypeError, ValueError, qs.model.DoesNotExist):
        raise Http404(f"No such {what}.") from None


def get_library_for_user(user, pk) -> Library:
    return _get(libraries_for(user), pk, "library")


def get_item_for_user(user, pk) -> MediaItem:
    return _get(media_for(user), pk, "media item")


def get_job_for_user(user, pk) -> Job:
    return _get(jobs_for(user), pk, "job")
