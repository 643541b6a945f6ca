"""The admin's cache and limits page."""

from django.urls import reverse

from offload.lib import limits


def test_the_page_shows_redis_namespaces_and_the_most_limited_clients(admin_client, alice_api, settings):
    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "api_user": "1/60"}
    alice_api.get("/api/v1/jobs/")
    for _ in range(3):
        assert alice_api.get("/api/v1/jobs/").status_code == 429
    page = admin_client.get(reverse("admin:offload_cache"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Memory used" in html and "Hit ratio" in html
    assert "Redis (cache and state)" in html
    assert "ratelimit" in html
    assert "<td>api_user</td><td>3</td>" in html
    assert "Cache and rate limits" in admin_client.get(reverse("admin:index")).content.decode()


def test_a_separate_cache_instance_is_shown_beside_the_state_instance(admin_client, settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": settings.REDIS_URL.rsplit("/", 1)[0] + "/13"},
    }
    html = admin_client.get(reverse("admin:offload_cache")).content.decode()
    assert "Redis (cache)" in html and "Redis (state)" in html
    assert html.count("Hit ratio") == 2


def test_reset_lets_a_limited_client_in_again(admin_client, alice, alice_api, settings):
    settings.OFFLOAD_RATE_LIMITS = {**settings.OFFLOAD_RATE_LIMITS, "api_user": "1/60"}
    alice_api.get("/api/v1/jobs/")
    assert alice_api.get("/api/v1/jobs/").status_code == 429
    # Asked first: nothing is reset by the first POST.
    asked = admin_client.post(reverse("admin:offload_cache"), {"who": f"user:{alice.pk}"})
    assert f"Reset the rate limits of user:{alice.pk}?" in asked.content.decode()
    assert alice_api.get("/api/v1/jobs/").status_code == 429
    response = admin_client.post(
        reverse("admin:offload_cache"), {"who": f"user:{alice.pk}", "post": "yes"}, follow=True
    )
    assert f"Rate limits reset for user:{alice.pk}." in response.content.decode()
    assert alice_api.get("/api/v1/jobs/").status_code == 200


def test_only_staff_may_see_it(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:offload_cache"))
    assert response.status_code == 302  # to the admin login


def test_with_redis_away_the_page_says_so(admin_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    page = admin_client.get(reverse("admin:offload_cache"))
    assert page.status_code == 200
    assert "Redis is not answering" in page.content.decode()


def test_limits_reset_is_per_client(alice, bob):
    assert limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed
    assert limits.acquire("api_user", f"user:{bob.pk}", 1, 60).allowed
    limits.reset("api_user", f"user:{alice.pk}")
    assert limits.acquire("api_user", f"user:{alice.pk}", 1, 60).allowed
    assert not limits.acquire("api_user", f"user:{bob.pk}", 1, 60).allowed
