"""Reading runs: the other half of ``tympan.track``, which writes them.

- ``record``: one stored run (:class:`RunRecord`), and run ids, prefixes and names resolved;
- ``query``: the run query as a plain value (filter, sort, page) and its text forms;
- ``language``: the query language of ``--where`` / ``where=`` / the UI's filter box;
- ``resolve``: what a query's keys name (run field, config key, metric), checked against
  ``scope``: the config and metric keys of the runs in scope, kept current incrementally;
- ``table``: a query run against a store (the runs table, ``tympan.find_runs``), in SQL;
- ``groups``: runs grouped by config keys with a metric's mean and interval;
- ``bands``: a metric's curve across a group's runs, with the groups' interval at each step;
- ``compare``: two runs diffed, N runs side by side;
- ``export``: a run as CSV or standard JSON;
- ``probe``: the probe's stored format, and what it stored read back;
- ``api``: ``tympan.load_run`` and ``tympan.find_runs``.

The web UI's page view models live next to the server (``tympan.server.views``).
"""
