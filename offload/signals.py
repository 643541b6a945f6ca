"""Model signals that keep derived state right: the API cache versions."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from offload.api.caching import bump_on_commit
from offload.models import Library, MediaItem, Rendition


@receiver([post_save, post_delete], sender=Library)
def library_changed(sender, instance: Library, **kwargs) -> None:
    bump_on_commit("libraries", [instance.owner_id])
    bump_on_commit("media", [instance.owner_id])


@receiver([post_save, post_delete], sender=MediaItem)
def item_changed(sender, instance: MediaItem, **kwargs) -> None:
    owner = Library.objects.filter(pk=instance.library_id).values_list("owner_id", flat=True).first()
    bump_on_commit("media", [owner])
    bump_on_commit("libraries", [owner])  # item counts


@receiver([post_save, post_delete], sender=Rendition)
def rendition_changed(sender, instance: Rendition, **kwargs) -> None:
    owner = MediaItem.objects.filter(pk=instance.item_id).values_list("library__owner_id", flat=True).first()
    bump_on_commit("media", [owner])
