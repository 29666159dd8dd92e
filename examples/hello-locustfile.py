"""A team's own locustfile for examples/hello_service.py, run by the harness with
``[load] profile = "locustfile"`` (see docs/load.md), or by hand: ``locust -f examples/hello-locustfile.py``.

ShopUser browses the items and, one visit in three, looks again and orders tea; BrowserUser only looks.
Nothing in here knows about the harness: it adds its rate, request and time caps and per-version stats.
"""

from locust import FastHttpUser, between, task


class ShopUser(FastHttpUser):
    """A shopper: lists the items, sometimes lists them again and orders tea (the shop answers 201)."""

    wait_time = between(0.05, 0.2)

    @task(2)
    def browse(self) -> None:
        self.client.get("/items")

    @task(1)
    def order(self) -> None:
        self.client.get("/items")  # two requests in one task: a rate paces requests, not tasks
        with self.client.post("/orders", json={"item": "tea"}, catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"order answered {response.status_code}, expected 201")


class BrowserUser(FastHttpUser):
    """A visitor who only looks."""

    wait_time = between(0.1, 0.3)

    @task
    def browse(self) -> None:
        self.client.get("/items")
