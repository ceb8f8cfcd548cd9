"""Reads two scrapes of a live server's /metrics with PyPI prometheus_client's
parser (text_string_to_metric_families, which refuses malformed exposition)
and checks that every Latchkey metric family is there with its type and that
the counters moved by what run.sh did between the scrapes.

Usage: check.py BEFORE AFTER (files holding the two scrapes)
"""

import math
import sys

from prometheus_client.parser import text_string_to_metric_families

# Family (as exposed) -> type. prometheus_client names a counter family
# without its `_total` suffix; its samples keep it.
FAMILIES = {
    "latchkey_http_requests_total": "counter",
    "latchkey_http_request_duration_seconds": "histogram",
    "latchkey_sign_ins_total": "counter",
    "latchkey_refreshes_total": "counter",
    "latchkey_password_hash_queue_depth": "gauge",
    "latchkey_password_hash_wait_seconds": "histogram",
    "latchkey_store_commit_batch_size": "histogram",
    "latchkey_store_commit_seconds": "histogram",
    "latchkey_revocation_feed_lag_seconds": "gauge",
    "latchkey_live_sessions": "gauge",
    "latchkey_signing_key_age_seconds": "gauge",
}


def parse(path):
    """(families: exposed name -> type, samples: list of (name, labels, value))."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families, samples = {}, []
    for family in text_string_to_metric_families(text):
        exposed = family.name + ("_total" if family.type == "counter" else "")
        families[exposed] = family.type
        for s in family.samples:
            samples.append((s.name, dict(s.labels), s.value))
    return families, samples


def total(samples, name, **labels):
    return sum(
        v
        for n, ls, v in samples
        if n == name and all(ls.get(k) == want for k, want in labels.items())
    )


def main():
    _, before = parse(sys.argv[1])
    families, after = parse(sys.argv[2])
    failures = []
    for name, kind in FAMILIES.items():
        if families.get(name) != kind:
            failures.append(f"{name}: expected a {kind}, found {families.get(name)}")

    def moved(name, expected, **labels):
        d = total(after, name, **labels) - total(before, name, **labels)
        if d != expected:
            failures.append(f"{name}{labels} moved by {d}, expected {expected}")

    moved("latchkey_sign_ins_total", 1, outcome="success")
    moved("latchkey_sign_ins_total", 1, outcome="failure")
    moved("latchkey_refreshes_total", 1, outcome="rotated")
    moved("latchkey_refreshes_total", 1, outcome="reuse_detected")
    moved("latchkey_http_requests_total", 1, route="/v1/sign-up", method="POST", status="201")
    moved("latchkey_http_requests_total", 1, route="/v1/sign-in", method="POST", status="200")
    moved("latchkey_http_requests_total", 1, route="/v1/sign-in", method="POST", status="401")
    moved("latchkey_http_requests_total", 2, route="/v1/tokens/refresh", method="POST")
    moved("latchkey_http_request_duration_seconds_count", 1, route="/v1/sign-in", status="200")
    moved("latchkey_password_hash_wait_seconds_count", 3)
    if total(after, "latchkey_store_commit_seconds_count") <= total(before, "latchkey_store_commit_seconds_count"):
        failures.append("no store commit recorded")
    for n, ls, v in after:
        if n == "latchkey_http_requests_total" and not (
            ls["route"] == "unmatched" or ls["route"].startswith("/")
        ):
            failures.append(f"a route label that is no route template: {ls}")
        if math.isnan(v):
            failures.append(f"{n}{ls} is NaN")
    age = total(after, "latchkey_signing_key_age_seconds")
    if age < 0:
        failures.append(f"signing key age {age}")

    if failures:
        for f in failures:
            print(f"metrics: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"metrics: {len(families)} families parsed; every counter moved as expected")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
