from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from offload.api import views

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("libraries", views.with_job_actions(views.LibraryViewSet, "library"), basename="library")
router.register("media", views.with_job_actions(views.MediaViewSet, "media"), basename="media")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path("profiles/", views.ProfileListView.as_view(), name="profiles"),
    path("queues/", views.QueueListView.as_view(), name="queues"),
    path("queues/<str:kind>/", views.QueueDetailView.as_view(), name="queue"),
    path("queues/<str:kind>/pause/", views.QueuePauseView.as_view(), name="queue-pause"),
    path("queues/<str:kind>/resume/", views.QueueResumeView.as_view(), name="queue-resume"),
    path("", include(router.urls)),
]
