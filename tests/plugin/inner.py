"""The arguments every inner pytest session of the plugin tests starts with."""

from __future__ import annotations

# locust's plugin imports locust, which patches the standard library with gevent: never load it in-process.
# hypothesis, pytest-benchmark and anyio are installed for other work and have nothing to do with the canary
# plugin (the project's pytest.ini turns them off too, but an inner session does not read it), yet every inner
# session and every xdist worker process would load them: without them a worker
# starts in ~0.6 s instead of ~1.4 s, and an in-process session skips their hooks. pytest-xdist passes these
# arguments on to its workers, so they hold there too.
INNER_ARGS: tuple[str, ...] = ("-p", "no:locust", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:anyio")
