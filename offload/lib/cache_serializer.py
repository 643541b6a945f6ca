"""The cache's serializer: pickles signed with SECRET_KEY, and an entry without a good signature is a miss.

Whatever can write to Redis could otherwise hand the web process a pickle that runs code as it
is read: a token entry, a session, an API answer. Every value django-redis stores goes through
here (config/settings.py, both cache roles): an HMAC-SHA256 of the pickle, keyed from
SECRET_KEY, then the pickle. A value whose HMAC matches neither SECRET_KEY nor one of
SECRET_KEY_FALLBACKS is never unpickled; it reads as None, which every caller takes for a miss.
"""

import logging
import pickle
from typing import Any

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django_redis.serializers.base import BaseSerializer

log = logging.getLogger("offload.cache")

# Keeps these MACs apart from any other use of SECRET_KEY (sessions, signing, django-q2's tasks).
SALT = "offload.cache.entry"
MAC_BYTES = 32


def mac(body: bytes, secret: str) -> bytes:
    return salted_hmac(SALT, body, secret=secret, algorithm="sha256").digest()


class SignedPickleSerializer(BaseSerializer):
    """django-redis' pickle serializer, with each entry signed and checked before it is unpickled."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._protocol = int(options.get("PICKLE_VERSION", pickle.DEFAULT_PROTOCOL))
        super().__init__(options=options)

    def dumps(self, value: Any) -> bytes:
        body = pickle.dumps(value, self._protocol)
        return mac(body, settings.SECRET_KEY) + body

    def loads(self, value: bytes) -> Any:
        signature, body = bytes(value[:MAC_BYTES]), bytes(value[MAC_BYTES:])
        for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())):
            if constant_time_compare(signature, mac(body, secret)):
                return pickle.loads(body)  # noqa: S301 (signed by us: checked just above)
        log.warning("a cache entry without a valid signature was refused (%d bytes)", len(value))
        return None
