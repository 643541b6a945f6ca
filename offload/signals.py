"""Model signals that keep derived state right (connected in ready()).

The API cache versions, each library's item count, and the joins of those who lose a library.
The cache is not called from here: `answers_changed` says whose answers went stale, and the
API cache subscribes to it (OffloadConfig.ready()).
"""

from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import Signal

from offload.access import drop_joins_without_access, library_audience
from offload.models import JobMember, Library, MediaItem, Rendition

# Sent inside the change's transaction: the answers in `namespace` ("media", "libraries",
# "jobs") of the users in `audience` are stale once it commits. Arguments: namespace, audience.
answers_changed = Signal()


def answers_stale(namespace: str, audience) -> None:
    """Announce that these users' answers in the namespace are stale (its receivers act at commit)."""
    answers_changed.send(sender=None, namespace=namespace, audience=audience)


def _bump_libraries(audience) -> None:
    answers_stale("libraries", audience)
    answers_stale("media", audience)


def library_before_change(sender, instance: Library, **kwargs) -> None:
    # Whoever could see the library before the change (an old owner, members a delete
    # cascades away) must lose their cached answers too; read now, while the rows say so.
    instance._audience_before = library_audience([instance.pk]) if instance.pk else set()


def library_changed(sender, instance: Library, **kwargs) -> None:
    before = getattr(instance, "_audience_before", set())
    now = library_audience([instance.pk]) if kwargs.get("signal") is post_save else set()
    _bump_libraries({*before, *now, instance.owner_id})
    if before - now:
        drop_joins_without_access(before - now)


def members_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """Library.members changed: the users added or removed gain or lose the library."""
    if action == "pre_clear":
        # The members are gone by post_clear: take them now.
        instance._members_before = {instance.pk} if reverse else set(instance.members.values_list("pk", flat=True))
        return
    if action == "post_clear":
        changed = getattr(instance, "_members_before", set())
    elif action in ("post_add", "post_remove"):
        changed = {instance.pk} if reverse else set(pk_set or ())
    else:
        return
    _bump_libraries(changed)
    if action != "post_add":
        drop_joins_without_access(changed)


def item_counted(sender, instance: MediaItem, **kwargs) -> None:
    """An item was created or deleted: its library's count follows in the same transaction."""
    if kwargs.get("signal") is post_save:
        if not kwargs.get("created"):
            return
        change = F("item_count") + 1
    else:
        # Never below zero, even after writes that bypassed the signals (the next scan recounts).
        change = Greatest(F("item_count") - 1, Value(0))
    Library.objects.filter(pk=instance.library_id).update(item_count=change)


def item_changed(sender, instance: MediaItem, **kwargs) -> None:
    audience = library_audience([instance.library_id])
    answers_stale("media", audience)
    answers_stale("libraries", audience)  # item counts


def rendition_changed(sender, instance: Rendition, **kwargs) -> None:
    library = MediaItem.objects.filter(pk=instance.item_id).values_list("library_id", flat=True).first()
    answers_stale("media", library_audience([library]) if library is not None else set())


def job_membership_changed(sender, instance: JobMember, **kwargs) -> None:
    # The joiner gains (or loses) a job in their job answers.
    answers_stale("jobs", [instance.user_id])


def connect() -> None:
    for signal in (post_save, post_delete):
        signal.connect(item_counted, sender=MediaItem, dispatch_uid=f"offload.counts.MediaItem.{signal is post_save}")
    for receiver, model in ((item_changed, MediaItem), (rendition_changed, Rendition), (library_changed, Library)):
        for signal in (post_save, post_delete):
            signal.connect(receiver, sender=model, dispatch_uid=f"offload.cache.{model.__name__}.{signal is post_save}")
    for name, signal in (("save", pre_save), ("delete", pre_delete)):
        signal.connect(library_before_change, sender=Library, dispatch_uid=f"offload.cache.Library.before_{name}")
    m2m_changed.connect(members_changed, sender=Library.members.through, dispatch_uid="offload.cache.Library.members")
    for name, signal in (("save", post_save), ("delete", post_delete)):
        signal.connect(job_membership_changed, sender=JobMember, dispatch_uid=f"offload.cache.JobMember.{name}")
