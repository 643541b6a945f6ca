"""The admin's pages: one module per page or group of pages.

- `site`: the admin site, its index and its navigation;
- `media`: libraries and media items; `enrich`: their enrichment controls;
- `jobs`: the job list and each job's page (`job_page`: the page's layout and own fields;
  `timeline`: its events as rows; `confirm`: the actions' confirmation page); `event_log`: the
  event log's page;
- what the pages share: `formatting` (times, durations, sizes), `badges` (a job's links, status,
  progress and heartbeat cells), `job_actions` (the kinds as admin actions), `pagination` and
  `filters` (the job list's);
- `dashboard`: the operations dashboard, its cached snapshot (`snapshot_cache`: its key) and the
  panels other apps add; `panels`: its own panels, from the spine's read side (offload.jobs.overview);
- `failures`: the failure groups and their page; `queues`, `schedules`: the Operations section's others;
- `cache`: Redis, the cache and the rate limits.

The ModelAdmins register from OffloadConfig.ready(), not from this package's import: the
admin site's class lives here too, and Django imports it while it sets the site up.
"""
