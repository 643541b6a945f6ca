"""Sessions: Django's cached_db, with the cache entry named by a digest of the session key.

Django names a session's cache entry by the session key itself, so whoever can list Redis'
keys holds every live session cookie. The digest keeps Redis' key names useless as cookies;
the database (the sessions' home) is unchanged.
"""

import hashlib

from django.contrib.sessions.backends import cached_db


class SessionStore(cached_db.SessionStore):
    cache_key_prefix = "offload.session."

    @property
    def cache_key(self) -> str:
        digest = hashlib.sha256(self._get_or_create_session_key().encode()).hexdigest()
        return self.cache_key_prefix + digest
