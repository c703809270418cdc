-- wrk script for plain GET runs (nginx, handshakes): prints p50/p99 like replay.lua does.
function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
