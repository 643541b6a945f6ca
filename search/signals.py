"""Model signals that keep the index in step: every save or delete of what a document shows.

`queryset.update()`, `bulk_create()` and raw SQL send no signals; code using them calls
`search.sync.mark_items()` itself.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from offload.models import MediaItem, Rendition
from search.sync import mark_items


@receiver(post_save, sender=MediaItem, dispatch_uid="search.item_saved")
@receiver(post_delete, sender=MediaItem, dispatch_uid="search.item_deleted")
def item_changed(sender, instance: MediaItem, using: str, **kwargs) -> None:
    mark_items([instance.pk], using=using)


# A document says whether its item has renditions.
@receiver(post_save, sender=Rendition, dispatch_uid="search.rendition_saved")
@receiver(post_delete, sender=Rendition, dispatch_uid="search.rendition_deleted")
def rendition_changed(sender, instance: Rendition, using: str, **kwargs) -> None:
    mark_items([instance.item_id], using=using)
