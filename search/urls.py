from django.urls import path

from search.api import SearchView

# Mounted under /api/v1/ by config/urls.py.
urlpatterns = [
    path("search/", SearchView.as_view(), name="search"),
]
