"""`make chaos`: replay hostile input and faults against a running balloond, print what held.

Each attack starts (or reuses) a real `balloond run` on the simulated host (`sim://`) or
libvirt's test driver (`test:///`), attacks it from outside the way a hostile local user,
guest or scraper would (docs/security.md names who can reach what), and measures from
outside too: scrape latency, the daemon's resident memory and CPU from /proc, the gap between
ticks from its node_exporter textfile, whether `status` still answers, whether its state and
every domain's floor and maxmem held.

Loopback and unix sockets in a private temporary folder only; every process started here is
stopped by its pid. `python -m chaos --help` lists the attacks.
"""
