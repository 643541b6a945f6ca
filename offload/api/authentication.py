"""The API's authentication: DRF's token scheme, answered by the shared token lookup (offload/tokens.py)."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from offload.tokens import user_for_token


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication, answered from the token cache (or the request, when the limiter asked)."""

    def authenticate(self, request):
        # DRF makes an authenticator per request: the request it serves can be kept on it.
        self.http_request = request._request
        return super().authenticate(request)

    def authenticate_credentials(self, key: str):
        known = getattr(self.http_request, "offload_token_user", None)
        user = known[1] if known is not None and known[0] == key else user_for_token(key)
        if user is None:
            raise AuthenticationFailed("Invalid token.")
        return (user, None)
