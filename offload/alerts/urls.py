from django.urls import path

from offload.alerts import api

urlpatterns = [
    path("notifications/endpoints/", api.EndpointListView.as_view(), name="notify-endpoints"),
    path("notifications/endpoints/<int:pk>/", api.EndpointDetailView.as_view(), name="notify-endpoint"),
    path("notifications/endpoints/<int:pk>/test/", api.EndpointTestView.as_view(), name="notify-endpoint-test"),
    path(
        "notifications/endpoints/<int:pk>/rotate-secret/",
        api.EndpointRotateSecretView.as_view(),
        name="notify-endpoint-rotate",
    ),
    path("notifications/endpoints/<int:pk>/deliveries/", api.DeliveryListView.as_view(), name="notify-deliveries"),
    path(
        "notifications/endpoints/<int:pk>/deliveries/<int:delivery_pk>/redeliver/",
        api.RedeliverView.as_view(),
        name="notify-redeliver",
    ),
]
