from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from offload.api import views
from search.api import SearchView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("libraries", views.LibraryViewSet, basename="library")
router.register("media", views.MediaViewSet, basename="media")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path("profiles/", views.ProfileListView.as_view(), name="profiles"),
    path("search/", SearchView.as_view(), name="search"),
    path("", include(router.urls)),
]
