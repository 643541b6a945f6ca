"""Sessions: Django's cached_db, with the cache entry named by an HMAC of the session key.

Django names a session's cache entry by the session key itself, so whoever can list Redis'
keys holds every live session cookie. An HMAC keyed with SECRET_KEY keeps the names useless
as cookies, and whoever can write to Redis cannot name the entry of a session key they make
up (so copying someone's validly signed entry logs nobody in). The database, the sessions'
home, is unchanged.
"""

from django.contrib.sessions.backends import cached_db
from django.utils.crypto import salted_hmac


class SessionStore(cached_db.SessionStore):
    cache_key_prefix = "offload.session."

    @property
    def cache_key(self) -> str:
        key = self._get_or_create_session_key()
        return self.cache_key_prefix + salted_hmac("offload.session.cache", key, algorithm="sha256").hexdigest()
