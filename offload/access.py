"""Access: the only way code fetches a library, item or job on a user's behalf.

A library is seen by its owner, its members and staff; its items and their renditions with
it. Another user's objects answer "not found", never "forbidden", so ids reveal nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from offload.jobs import kinds
from offload.models import EventSequence, Job, JobEvent, JobMember, Library, MediaItem

LibraryMembership = Library.members.through


def _library_q(user, prefix: str = "") -> Q:
    """Libraries the (non-staff) user owns or is a member of, as a filter (prefix "library__" from an item)."""
    member = LibraryMembership.objects.filter(library_id=OuterRef("library_id" if prefix else "pk"), user_id=user.pk)
    return Q(**{f"{prefix}owner_id": user.pk}) | Q(Exists(member))


@dataclass(frozen=True)
class JobVisibility:
    """The one rule for who sees a job: staff see every job; anyone else the jobs they asked
    for or joined (a joiner, the job's events from the moment they joined), internal kinds
    excepted. The API, the admin, the live stream and its replay all ask here.
    """

    everything: bool
    user_id: int | None
    hidden_kinds: tuple[str, ...]

    def q(self, prefix: str = "") -> Q:
        """The rule as a filter on Job, or on JobEvent with prefix "job__" (joiners see events after their join)."""
        if self.everything:
            return Q()
        joined = JobMember.objects.filter(job_id=OuterRef("pk"), user_id=self.user_id)
        if prefix == "job__":
            # An event row: only what happened after the user joined.
            joined = JobMember.objects.filter(
                job_id=OuterRef("job_id"), user_id=self.user_id, joined_after_seq__lt=OuterRef("seq")
            )
        mine = Q(**{f"{prefix}requested_by_id": self.user_id}) | Q(Exists(joined))
        return mine & ~Q(**{f"{prefix}kind__in": self.hidden_kinds})

    def admits(self, recipients: Iterable[int], kind: str) -> bool:
        """The rule for one live event, known by who may see it (requester and joiners) and its job's kind."""
        return self.everything or (self.user_id in set(recipients) and kind not in self.hidden_kinds)


def job_visibility(user) -> JobVisibility:
    return JobVisibility(bool(user.is_staff), user.pk, tuple(kinds.internal_names()))


def event_recipients(event: JobEvent) -> list[int]:
    """The users (staff aside) who may see a job event: its requester and those who joined before it.

    Read once per event (the API cache and the publisher both ask) and kept on the row object.
    """
    found = getattr(event, "_recipients", None)
    if found is None:
        requester = [event.user_id] if event.user_id is not None else []
        if getattr(event, "nobody_joined", False):
            # Known when the event was written (offload.jobs.events.record_event): the accept
            # path and the worker's claim and finish skip the query.
            found = event._recipients = requester
            return found
        joined = JobMember.objects.filter(job_id=event.job_id, joined_after_seq__lt=event.seq)
        found = event._recipients = sorted({*requester, *joined.values_list("user_id", flat=True)})
    return found


def join_job(user, job: Job) -> bool:
    """Let the user see a job someone else asked for, from now on; False when they already could."""
    if user.is_staff or job.requested_by_id == user.pk:
        return False
    with transaction.atomic():
        # The job row's lock first, taken by every join (not only the one that sets the flag): a
        # transaction writing an event for the job either committed before it (its seq is then
        # at most the `now` read next, so the joiner is not among its recipients) or waits, and
        # reads has_members True in its UPDATE … RETURNING and the joiner after its commit.
        Job.objects.filter(pk=job.pk).update(has_members=True)
        now = EventSequence.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
        _, created = JobMember.objects.get_or_create(job=job, user=user, defaults={"joined_after_seq": now})
    return created


def leave_job(user, job: Job) -> bool:
    """Stop seeing a job the user joined; False when they had not joined it."""
    deleted, _ = JobMember.objects.filter(job=job, user=user).delete()
    return bool(deleted)


def drop_joins_without_access(user_ids: Iterable[int]) -> int:
    """Delete the joins these users hold on jobs whose library or item they can no longer see.

    Called when a library loses members or changes owner: the job leaves their job list, their
    replay and their live stream with the join (events are sent to the joiners on record).
    """
    User = get_user_model()
    dropped = 0
    for user in User.objects.filter(pk__in=list(user_ids), is_staff=False):
        joins = JobMember.objects.filter(user=user)
        lost = joins.filter(job__target_type="media").exclude(job__target_id__in=media_for(user).values("pk")) | (
            joins.filter(job__target_type="library").exclude(job__target_id__in=libraries_for(user).values("pk"))
        )
        # Through the model's delete, so the joiner's cached job answers are refreshed (offload/signals.py).
        dropped += lost.delete()[0]
    return dropped


def is_joiner(user, job: Job) -> bool:
    """Whether the user sees this job only because they joined it."""
    return job.requested_by_id != user.pk and JobMember.objects.filter(job=job, user=user).exists()


def library_audience(library_ids: Iterable[int]) -> set[int]:
    """Every non-staff user who can see any of these libraries: owners and members."""
    ids = list(library_ids)
    owners = Library.objects.filter(pk__in=ids, owner__isnull=False).values_list("owner_id", flat=True)
    members = LibraryMembership.objects.filter(library_id__in=ids).values_list("user_id", flat=True)
    return {*owners, *members}


def libraries_for(user) -> QuerySet[Library]:
    qs = Library.objects.all()
    return qs if user.is_staff else qs.filter(_library_q(user))


def media_for(user) -> QuerySet[MediaItem]:
    qs = MediaItem.objects.select_related("library")
    return qs if user.is_staff else qs.filter(_library_q(user, "library__"))


def jobs_for(user) -> QuerySet[Job]:
    return Job.objects.filter(job_visibility(user).q())


def targets_for(user, target_type: str) -> QuerySet:
    """The job targets of a type (as kinds name it) the user may see."""
    return {"media": media_for, "library": libraries_for}[target_type](user)


def _get(qs: QuerySet, pk, what: str):
    try:
        return qs.get(pk=int(pk))
    except (TypeError, ValueError, OverflowError, qs.model.DoesNotExist):
        raise Http404(f"No such {what}.") from None


def get_library_for_user(user, pk) -> Library:
    return _get(libraries_for(user), pk, "library")


def get_item_for_user(user, pk) -> MediaItem:
    return _get(media_for(user), pk, "media item")


def get_target_for_user(user, target_type: str, pk) -> Library | MediaItem:
    """A job's target (by its type, as kinds name it) on the user's behalf."""
    return {"media": get_item_for_user, "library": get_library_for_user}[target_type](user, pk)


def get_job_for_user(user, pk) -> Job:
    return _get(jobs_for(user), pk, "job")
