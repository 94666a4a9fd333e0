"""Prometheus metrics for balloond: a collector over the daemon's view, an HTTP(S) endpoint
and a node_exporter textfile writer. Nothing is registered at import time.

    from balloond.metrics import serve, write_textfile
    server = serve(view, "127.0.0.1", 9877)          # port 0 picks a free port
    ...
    server.close()

Metric names and meanings: docs/metrics.md.
"""

from balloond.metrics.collector import BalloondCollector, make_registry, render
from balloond.metrics.server import DEFAULT_ADDRESS, DEFAULT_PORT, MetricsServer, serve
from balloond.metrics.textfile import write_textfile

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "BalloondCollector",
    "MetricsServer",
    "make_registry",
    "render",
    "serve",
    "write_textfile",
]
