"""Access: the only way code fetches a library, item or job on a user's behalf.

Another user's objects answer "not found", never "forbidden", so ids reveal nothing.
"""

from django.db.models import QuerySet
from django.http import Http404

from offload.kinds import INTERNAL_KINDS
from offload.models import Job, Library, MediaItem


def libraries_for(user) -> QuerySet[Library]:
    qs = Library.objects.all()
    return qs if user.is_staff else qs.filter(owner=user)


def media_for(user) -> QuerySet[MediaItem]:
    qs = MediaItem.objects.select_related("library")
    return qs if user.is_staff else qs.filter(library__owner=user)


def jobs_for(user) -> QuerySet[Job]:
    if user.is_staff:
        return Job.objects.all()
    return Job.objects.filter(requested_by=user).exclude(kind__in=INTERNAL_KINDS)


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
