"""GET /api/v1/search/: parse, search what the user may see, answer the JSON of docs/api.md."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from offload.api.caching import with_etag
from offload.models import MediaKind
from search.query import SORTS, SearchRequest, search_media

MAX_PER_PAGE = 100
MAX_PAGE = 10_000


class SearchParamsSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, default="", trim_whitespace=True)
    kind = serializers.ChoiceField(choices=MediaKind.choices, required=False)
    genre = serializers.CharField(required=False, max_length=100)
    year_from = serializers.IntegerField(required=False, min_value=0, max_value=9999)
    year_to = serializers.IntegerField(
        required=False, min_value=0, max_value=9999, help_text="Not before year_from (400 otherwise)."
    )
    library = serializers.IntegerField(required=False, min_value=1)
    page = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE, default=1)
    per_page = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PER_PAGE, default=20)
    sort = serializers.ChoiceField(
        choices=list(SORTS),
        required=False,
        default="relevance",
        help_text="relevance, year or -year, title or -title, added or -added (date added).",
    )

    def to_internal_value(self, data):
        # DRF reads a blank query value as "not given" and applies the default; the schema forbids
        # it (an enum, an integer), so the validation does too. `q` alone may be blank.
        given_blank = {name for name in self.fields if data.get(name) == ""}
        blank = {name for name in given_blank if not getattr(self.fields[name], "allow_blank", False)}
        if blank:
            raise serializers.ValidationError({name: ["This field may not be blank."] for name in sorted(blank)})
        return super().to_internal_value(data)

    def validate(self, attrs):
        year_from, year_to = attrs.get("year_from"), attrs.get("year_to")
        if year_from is not None and year_to is not None and year_from > year_to:
            raise serializers.ValidationError({"year_to": ["Must not be before year_from."]})
        return attrs


class SearchHitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    kind = serializers.CharField()
    year = serializers.IntegerField(allow_null=True)
    genres = serializers.ListField(child=serializers.CharField())
    library = serializers.IntegerField()
    highlight = serializers.DictField(help_text="Field name → the matching text with <mark> around matched words.")


class SearchAnswerSerializer(serializers.Serializer):
    found = serializers.IntegerField()
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    degraded = serializers.BooleanField(help_text="True when Typesense was unreachable and the database answered.")
    hits = SearchHitSerializer(many=True)
    facets = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Facet (kind, genres, year, library, resolution) → value → count.",
    )


class SearchView(APIView):
    """Full-text search over the media the user may see."""

    @extend_schema(
        parameters=[SearchParamsSerializer],
        responses={
            200: SearchAnswerSerializer,
            # SearchParamsSerializer's field errors, e.g. per_page above the maximum.
            400: OpenApiTypes.OBJECT,
        },
    )
    def get(self, request: Request) -> Response:
        params = SearchParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        # Not kept in the API cache: the index changes after the commit that bumps the versions.
        # The ETag still spares a client the body of an answer it already has.
        return with_etag(request, Response(search_media(request.user, SearchRequest(**params.validated_data))))
