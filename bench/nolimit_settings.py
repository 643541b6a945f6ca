"""The app's settings without the rate limiter, for measuring what RateLimitMiddleware costs (bench/cache.py)."""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE

MIDDLEWARE = [name for name in MIDDLEWARE if name != "offload.web.throttle.RateLimitMiddleware"]
