#!/usr/bin/env python3
"""A delivery that is still in flight when the daemon is told to stop (scripts/test-docker).

    inflight_post.py URL CAFILE SIGNATURE BODY_FILE READY_FILE GO_FILE

Connects to URL over TLS (trusting CAFILE only, host name checked), sends the request head
and the first half of BODY_FILE with `x-dynamic-signature-256: SIGNATURE`, then creates
READY_FILE and waits until GO_FILE exists (the caller creates it once the daemon logs that it
is draining), sends the rest of the body and prints the answer: `STATUS BODY` on one line.
Exits 0 when an answer arrived (whatever its status), 1 when none did or GO_FILE never came
(60 s).
"""

import http.client
import os
import ssl
import sys
import time
import urllib.parse


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    url, cafile, signature, body_file, ready_file, go_file = sys.argv[1:]
    with open(body_file, "rb") as f:
        body = f.read()
    parsed = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=60)
    try:
        conn.putrequest("POST", parsed.path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("x-dynamic-signature-256", signature)
        half = len(body) // 2
        conn.endheaders(body[:half])
        with open(ready_file, "w"):
            pass
        deadline = time.monotonic() + 60
        while not os.path.exists(go_file):
            if time.monotonic() > deadline:
                print(f"inflight_post: {go_file} did not appear in 60 s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        conn.send(body[half:])
        answer = conn.getresponse()
        print(answer.status, answer.read().decode("utf-8", "replace").strip())
        return 0
    except (OSError, http.client.HTTPException) as e:
        print(f"inflight_post: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
