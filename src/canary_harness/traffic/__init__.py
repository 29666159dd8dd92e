"""Traffic control: the TrafficController protocol and its NGINX weighted-upstream implementation."""

from canary_harness.traffic.protocol import TrafficController

__all__ = ["TrafficController"]
