"""Model signals that keep the index in step: every save or delete of what a document shows.

Connected in SearchConfig.ready(). `queryset.update()`, `bulk_create()` and raw SQL send no
signals; code using them calls `search.sync.mark_items()` itself.
"""

from django.db.models.signals import post_delete, post_save

from offload.models import MediaItem, Rendition
from search.sync import mark_items


def item_changed(sender, instance: MediaItem, using: str, **kwargs) -> None:
    mark_items([instance.pk], using=using)


# A document says whether its item has renditions.
def rendition_changed(sender, instance: Rendition, using: str, **kwargs) -> None:
    mark_items([instance.item_id], using=using)


def connect() -> None:
    post_save.connect(item_changed, sender=MediaItem, dispatch_uid="search.item_saved")
    post_delete.connect(item_changed, sender=MediaItem, dispatch_uid="search.item_deleted")
    post_save.connect(rendition_changed, sender=Rendition, dispatch_uid="search.rendition_saved")
    post_delete.connect(rendition_changed, sender=Rendition, dispatch_uid="search.rendition_deleted")
