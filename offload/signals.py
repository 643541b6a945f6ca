"""Model signals that keep derived state right: the API cache versions (connected in ready())."""

from django.db.models.signals import post_delete, post_save

from offload.api.caching import bump_on_commit
from offload.models import Library, MediaItem, Rendition


def library_changed(sender, instance: Library, **kwargs) -> None:
    bump_on_commit("libraries", [instance.owner_id])
    bump_on_commit("media", [instance.owner_id])


def item_changed(sender, instance: MediaItem, **kwargs) -> None:
    owner = Library.objects.filter(pk=instance.library_id).values_list("owner_id", flat=True).first()
    bump_on_commit("media", [owner])
    bump_on_commit("libraries", [owner])  # item counts


def rendition_changed(sender, instance: Rendition, **kwargs) -> None:
    owner = MediaItem.objects.filter(pk=instance.item_id).values_list("library__owner_id", flat=True).first()
    bump_on_commit("media", [owner])


def connect() -> None:
    for receiver, model in ((library_changed, Library), (item_changed, MediaItem), (rendition_changed, Rendition)):
        for signal in (post_save, post_delete):
            signal.connect(receiver, sender=model, dispatch_uid=f"offload.cache.{model.__name__}.{signal is post_save}")
