"""The bare django-q2 task the queue benchmark compares the spine against."""


def noop(*args: object) -> None:
    """Do nothing: what is left is django-q2's own cost per task."""
    return None
