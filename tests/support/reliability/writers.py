"""Event writers for the event-log stress test, run in `manage.py shell` subprocesses of their own.

Each writer takes jobs of several people through the spine (queued, started, progress,
succeeded), each transition its own transaction, as fast as it can: many processes then
commit job events at once, as web requests and workers do.
"""

import random
import sys

from django.contrib.auth.models import User
from django.db import transaction

from offload import jobs
from offload.models import Library, MediaItem
from tests.support.publisher import flush_publisher


def items_for(usernames: list[str]) -> dict[str, list[int]]:
    """A library and a few items per person (created once; later writers find them)."""
    found = {}
    for username in usernames:
        owner = User.objects.get(username=username)
        library, _ = Library.objects.get_or_create(name=f"stress {username}", owner=owner, path=f"/stress/{username}")
        found[username] = [
            MediaItem.objects.get_or_create(library=library, relative_path=f"{n}.mp4")[0].pk for n in range(4)
        ]
    return found


def write(seed: int, usernames: list[str], rounds: int) -> None:
    """Take `rounds` jobs of random people from queued to succeeded; prints WROTE <events> at the end."""
    rng = random.Random(seed)
    items = items_for(usernames)
    people = {name: User.objects.get(username=name) for name in usernames}
    written = 0
    for n in range(rounds):
        name = rng.choice(usernames)
        item = MediaItem.objects.get(pk=rng.choice(items[name]))
        job, created = jobs.enqueue("media.enrich", target=item, params={"w": seed, "n": n}, user=people[name])
        written += int(created)
        claimed = jobs.claim(job.pk)
        if claimed is None:
            continue
        written += 1
        with transaction.atomic():
            written += int(jobs.heartbeat(claimed, progress=50.0))
        written += int(jobs.succeed(claimed, {"writer": seed}))
    # A worker lives on after its last commit; this process is about to exit, so it waits
    # for its publisher thread to send what it has.
    flush_publisher()
    print(f"WROTE {written}")
    sys.stdout.flush()
