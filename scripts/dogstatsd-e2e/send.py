#!/usr/bin/env python3
"""Sends DogStatsD traffic with the real PyPI `datadog` client and prints, as JSON, what a
Datadog-style aggregator must make of it (the oracle of
examples/meshmon-agent/tests/dogstatsd_client.rs).

    send.py --udp 127.0.0.1:8125 --socket /path/dsd.socket --seed 7

Three senders, each tagged `client:<c>` and `transport:<t>`:
  - datadog.DogStatsd over UDP           (client:instance, transport:udp)
  - datadog.DogStatsd over the Unix socket (client:instance, transport:uds)
  - datadog.statsd (initialize()) over the Unix socket (client:global, transport:uds)

Each sends counters (with tags, values and sample rates), gauges, histograms (one also
sampled), distributions, sets, timings, events and service checks. Every group of
samples of one context is sent inside `with client:` (one buffered datagram), so the
agent aggregates it within one flush interval.

Expectations (Datadog's DogStatsD aggregation, docs.datadoghq.com/metrics/types/ and
developers/dogstatsd/data_aggregation/):
  sum    the points of the series add up to the value (counts: value / sample_rate summed)
  last   the newest point is the value (gauges: last value wins)
  max    the largest point is the value
  single exactly one point, with the value (aggregates of one flush)
"""
import argparse
import json
import random
import sys

import datadog
from datadog import DogStatsd


def agent_histogram(samples, percentiles=(95,)):
    """The Datadog Agent's histogram flush (pkg/metrics/histogram.go): samples of
    (value, sample_rate) weighted int(1 / rate); median is the first sorted sample whose
    running weight exceeds (count - 1) // 2, percentile p the first whose running weight
    exceeds (p * count - 1) // 100."""
    ws = sorted((v, int(1 / r)) for v, r in samples)
    count = sum(w for _, w in ws)
    total = sum(v * w for v, w in ws)

    def first_over(target):
        acc = 0
        for v, w in ws:
            acc += w
            if acc > target:
                return v
        return ws[-1][0]

    out = {"max": ws[-1][0], "min": ws[0][0], "avg": total / count, "count": float(count),
           "median": first_over((count - 1) // 2)}
    for p in percentiles:
        out["%dpercentile" % p] = first_over((p * count - 1) // 100)
    return out


def scenario(client, tags, seed, expect):
    def exp(name, check, value, extra=()):
        expect["series"].append(
            {"name": "e2e." + name, "tags": sorted(list(tags) + list(extra)), "check": check, "value": value}
        )

    # Counters: increments with tags, a value, a decrement.
    with client:
        for _ in range(5):
            client.increment("page.views", tags=["page:home"])
        client.increment("page.views", value=3, tags=["page:cart"])
        client.increment("page.views", value=3, tags=["page:cart"])
        client.decrement("stock", value=2)
        client.count("bytes", 1500)
        client.count("bytes", 500)
    exp("page.views", "sum", 5.0, ["page:home"])
    exp("page.views", "sum", 6.0, ["page:cart"])
    exp("stock", "sum", -2.0)
    exp("bytes", "sum", 2000.0)

    # A sampled counter: replay the client's RNG (it drops a sample when random() > rate).
    rate = 0.25
    random.seed(seed)
    kept = sum(1 for _ in range(40) if not random.random() > rate)
    random.seed(seed)
    with client:
        for _ in range(40):
            client.increment("sampled", sample_rate=rate)
    exp("sampled", "sum", kept / rate)

    # Gauges: the last value of the interval wins.
    with client:
        for v in (3, 9, 4):
            client.gauge("queue.depth", v, tags=["queue:orders"])
    exp("queue.depth", "last", 4.0, ["queue:orders"])

    # Histograms: max, median, avg, count and 95percentile (the Agent's defaults).
    values = [float(v) for v in range(1, 21)]
    with client:
        for v in values:
            client.histogram("payload.size", v)
    h = agent_histogram([(v, 1.0) for v in values])
    exp("payload.size.max", "max", h["max"])
    exp("payload.size.median", "single", h["median"])
    exp("payload.size.avg", "single", h["avg"])
    exp("payload.size.count", "sum", h["count"])
    exp("payload.size.95percentile", "single", h["95percentile"])

    # A sampled histogram: count is the sum of 1 / rate over the samples kept.
    hrate = 0.5
    hvalues = [float(v) for v in range(100, 130)]
    random.seed(seed + 1)
    hkept = [v for v in hvalues if not random.random() > hrate]
    random.seed(seed + 1)
    with client:
        for v in hvalues:
            client.histogram("batch.size", v, sample_rate=hrate)
    if hkept:
        h = agent_histogram([(v, hrate) for v in hkept])
        exp("batch.size.count", "sum", h["count"])
        exp("batch.size.max", "max", h["max"])
        exp("batch.size.avg", "single", h["avg"])
        exp("batch.size.median", "single", h["median"])

    # Timing (`ms`): aggregated as a histogram.
    with client:
        for ms in (5.0, 15.0, 25.0):
            client.timing("db.query", ms, tags=["db:users"])
    h = agent_histogram([(v, 1.0) for v in (5.0, 15.0, 25.0)])
    exp("db.query.max", "max", h["max"], ["db:users"])
    exp("db.query.avg", "single", h["avg"], ["db:users"])
    exp("db.query.median", "single", h["median"], ["db:users"])
    exp("db.query.count", "sum", h["count"], ["db:users"])

    # Distributions: the store keeps each flush's mean.
    dvalues = [12.0, 7.0, 30.0, 11.0]
    with client:
        for v in dvalues:
            client.distribution("req.latency", v, tags=["route:/api"])
    exp("req.latency", "single", sum(dvalues) / len(dvalues), ["route:/api"])

    # Sets: the number of distinct members.
    with client:
        for u in ("alice", "bob", "alice", "carol", "bob"):
            client.set("users.unique", u)
    exp("users.unique", "single", 3.0)

    # Events and service checks: parsed and counted by the agent.
    client.event(
        "Deploy finished",
        "productpage v2\nrolled out",
        alert_type="success",
        aggregation_key="deploy-42",
        source_type_name="kubernetes",
        priority="low",
        tags=["service:productpage"],
        hostname="node-a",
    )
    client.event("Config | changed", "mesh policy updated", alert_type="warning")
    expect["events"] += 2
    client.service_check("e2e.app.can_connect", DogStatsd.OK, tags=["db:users"], message="ok")
    client.service_check("e2e.app.can_connect", DogStatsd.WARNING, hostname="node-a", message="slow: 2s")
    client.service_check("e2e.app.disk", DogStatsd.CRITICAL, timestamp=1700000000)
    expect["service_checks"] += 3
    client.flush()
    # What the client could not write is lost before the agent sees it: fail loudly.
    dropped = client.packets_dropped_writer + client.packets_dropped_queue
    if dropped:
        sys.exit("the client dropped %d packets (tags %s)" % (dropped, tags))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--udp", required=True, help="host:port of the agent's DogStatsD UDP listener")
    ap.add_argument("--socket", required=True, help="the agent's DogStatsD Unix socket")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    host, port = a.udp.rsplit(":", 1)
    expect = {"series": [], "events": 0, "service_checks": 0, "datadog": datadog.__version__}

    udp = DogStatsd(host=host, port=int(port), namespace="e2e", disable_telemetry=True,
                    constant_tags=["client:instance", "transport:udp"])
    scenario(udp, ["client:instance", "transport:udp"], a.seed, expect)
    udp.close_socket()

    # Over a Unix datagram socket the kernel queues few datagrams per receiver
    # (net.unix.max_dgram_qlen, 10 by default); the client's default non-blocking send
    # drops what does not fit, so the senders block (with a timeout), as Datadog's docs
    # advise for UDS.
    uds = DogStatsd(socket_path=a.socket, namespace="e2e", disable_telemetry=True,
                    socket_timeout=5, constant_tags=["client:instance", "transport:uds"])
    scenario(uds, ["client:instance", "transport:uds"], a.seed + 10, expect)
    uds.close_socket()

    datadog.initialize(statsd_socket_path=a.socket, statsd_namespace="e2e",
                       statsd_constant_tags=["client:global", "transport:uds"])
    datadog.statsd.disable_telemetry()
    datadog.statsd.set_socket_timeout(5)
    scenario(datadog.statsd, ["client:global", "transport:uds"], a.seed + 20, expect)
    datadog.statsd.close_socket()

    json.dump(expect, sys.stdout)
    print()


if __name__ == "__main__":
    main()
