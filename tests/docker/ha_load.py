#!/usr/bin/env python3
"""Signed deliveries through the balancer while an instance dies (scripts/test-docker, stage ha).

    ha_load.py URL CAFILE SECRET_FILE COUNT RESULTS_FILE [--kill-at N -- COMMAND...]

Sends COUNT Dynamic pings, each with a fresh event id and signed with SECRET_FILE's text as
Dynamic signs (x-dynamic-signature-256: sha256=HMAC-SHA256 of the body), to URL over TLS
(trusting CAFILE only, host name checked), 8 at a time, each on a new connection (so the
balancer spreads them). Once N deliveries have their first answer, COMMAND runs (`docker
kill` of one instance) while the others keep going. Then, as a provider does, every delivery
whose answer was not 200 (an error status, a reset connection, no answer within 30 s) is sent
again, the same bytes, up to 20 times a second apart, until it gets 200.

RESULTS_FILE gets one JSON line per delivery: eventId, the answers of its attempts (status
code and the body's "status", or the error), and whether the last one was 200. Prints a
summary. Exits 0 when every delivery got a 200 in the end, 1 otherwise.
"""

import concurrent.futures
import hashlib
import hmac
import http.client
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

CONCURRENCY = 8
RETRIES = 20


def attempt(parsed, context, body, signature):
    """One POST on a new connection: (status, answer status) or (None, error)."""
    conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=30)
    try:
        conn.request("POST", parsed.path, body=body,
                     headers={"Content-Type": "application/json",
                              "x-dynamic-signature-256": signature})
        response = conn.getresponse()
        answer = response.read()
        try:
            status = json.loads(answer).get("status", "")
        except ValueError:
            status = answer[:80].decode("utf-8", "replace")
        return response.status, status
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    finally:
        conn.close()


def main():
    args = sys.argv[1:]
    kill_at, command = None, []
    if "--kill-at" in args:
        i = args.index("--kill-at")
        if len(args) < i + 4 or args[i + 2] != "--":
            print(__doc__, file=sys.stderr)
            return 2
        kill_at, command = int(args[i + 1]), args[i + 3:]
        args = args[:i]
    if len(args) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    url, cafile, secret_file, count, results_file = args
    count = int(count)
    with open(secret_file, "rb") as f:
        secret = f.read()
    parsed = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cafile=cafile)

    deliveries = []
    for _ in range(count):
        event_id = str(uuid.uuid4())
        body = json.dumps({"messageId": str(uuid.uuid4()), "eventId": event_id,
                           "eventName": "ping", "timestamp": "2026-01-01T00:00:00.000Z",
                           "data": {}}, separators=(",", ":")).encode()
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        deliveries.append({"eventId": event_id, "body": body, "signature": signature,
                           "attempts": []})

    lock = threading.Lock()
    answered = 0
    kill = {"thread": None, "started": None, "done": None, "rc": None, "answered_before": None}

    def run_kill():
        kill["started"] = time.monotonic()
        kill["rc"] = subprocess.run(command, stdout=subprocess.DEVNULL, check=False).returncode
        kill["done"] = time.monotonic()

    def first(d):
        nonlocal answered
        d["attempts"].append(attempt(parsed, context, d["body"], d["signature"]))
        with lock:
            answered += 1
            if kill_at is not None and answered >= kill_at and kill["thread"] is None:
                kill["answered_before"] = answered
                kill["thread"] = threading.Thread(target=run_kill)
                kill["thread"].start()

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(first, deliveries))
    first_pass = time.monotonic() - start
    if kill["thread"] is not None:
        kill["thread"].join()

    def retry(d):
        for _ in range(RETRIES):
            if d["attempts"][-1][0] == 200:
                return
            time.sleep(1)
            d["attempts"].append(attempt(parsed, context, d["body"], d["signature"]))

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(retry, deliveries))

    failed_first = [d for d in deliveries if d["attempts"][0][0] != 200]
    never = [d for d in deliveries if d["attempts"][-1][0] != 200]
    with open(results_file, "w", encoding="utf-8") as f:
        for d in deliveries:
            f.write(json.dumps({"eventId": d["eventId"], "ok": d["attempts"][-1][0] == 200,
                                "attempts": [list(a) for a in d["attempts"]]}) + "\n")
    kinds = {}
    for d in failed_first:
        key = str(d["attempts"][0][0] or d["attempts"][0][1])
        kinds[key] = kinds.get(key, 0) + 1
    print(f"{count} deliveries, first pass {first_pass:.1f} s; {len(failed_first)} without 200 at "
          f"first ({kinds}), retried; {len(never)} never got 200")
    retried_ok = [d["attempts"][-1][1] for d in failed_first if d["attempts"][-1][0] == 200]
    print(f"retries answered 200: {retried_ok.count('accepted')} accepted, "
          f"{retried_ok.count('duplicate')} duplicate (stored by the attempt that lost its answer)")
    if kill_at is not None:
        if kill["thread"] is None:
            print("the kill command never ran", file=sys.stderr)
            return 1
        print(f"kill command ran after {kill['answered_before']} answers, exit {kill['rc']}, "
              f"{kill['done'] - kill['started']:.1f} s")
        if kill["rc"] != 0:
            return 1
    return 0 if not never else 1


if __name__ == "__main__":
    sys.exit(main())
