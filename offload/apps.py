from django.apps import AppConfig


class OffloadConfig(AppConfig):
    name = "offload"
    verbose_name = "Offload"

    def ready(self) -> None:
        from offload import checks, signals  # noqa: F401  (registers the system checks and receivers)
