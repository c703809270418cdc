#!/usr/bin/env python3
"""Splits the I/O threads' samples of a perf profile of hookvault by pipeline stage.

    perf record -F 400 --call-graph dwarf,16384 -p <hookvault pid> -- sleep 8
    perf script -F comm,ip,sym > script.txt
    bench/perf-buckets.py script.txt [MAIN_THREAD_NAME]

Each sample of the I/O threads (the main thread, named after the binary: hv-base
for a copy at /tmp/hv-base, the default; pass the name otherwise;
and hv-public) goes to the first stage its stack names, walking from the leaf up
(the rules below, in order); "kernel leaf" is the part whose leaf frame is in the
kernel. Prints the share of each stage.
"""
import collections
import re
import sys

IO_THREADS = {sys.argv[2] if len(sys.argv) > 2 else 'hv-base', 'hv-public'}
rules = [
 ('json', re.compile(r'parse_strict|nlohmann')),
 ('hmac', re.compile(r'hmac_sha|SignatureVerifier::matches')),
 ('seal', re.compile(r'seal_payload|wrap_dek|aead_seal|gcm_seal|SecretBytes::random')),
 ('submit', re.compile(r'Store::submit|Store::Impl::enqueue')),
 ('verify-other', re.compile(r'verify_delivery')),
 ('pipeline-other', re.compile(r'Pipeline::|plan_nodit')),
 ('tls-attempt', re.compile(r'TlsStreamImpl::attempt')),
 ('http-read', re.compile(r'read_some_op|basic_parser')),
 ('http-write', re.compile(r'write_some_op|write_msg_op|serializer')),
 ('tlsstream', re.compile(r'TlsStream')),
 ('serve', re.compile(r'serve_requests|awaitable')),
 ('asio', re.compile(r'scheduler|epoll_reactor|boost::asio')),
]
tot = collections.Counter(); leafk = collections.Counter()
comm=None; frames=[]
def flush():
    if comm is None: return
    b='other'
    for f in frames:
        for name,rx in rules:
            if rx.search(f): b=name; break
        else: continue
        break
    kern = frames and frames[0].startswith('K')
    tot[(comm,b)]+=1
    if kern: leafk[(comm,b)]+=1
for line in open(sys.argv[1]):
    if not line.startswith('\t') and line.strip():
        flush(); comm=line.split()[0]; frames=[]
    elif line.strip():
        parts=line.strip().split(' ',1)
        sym=parts[1] if len(parts)>1 else ''
        addr=parts[0]
        frames.append(('K' if addr.startswith('ffff') else 'U')+sym)
flush()
comms=collections.Counter()
for (c,b),n in tot.items(): comms[c]+=n
allio = sum(n for (c,b),n in tot.items() if c in IO_THREADS)
print('samples', dict(comms))
agg=collections.Counter(); aggk=collections.Counter()
for (c,b),n in tot.items():
    if c in IO_THREADS: agg[b]+=n; aggk[b]+=leafk[(c,b)]
for b,n in agg.most_common():
    print(f'{b:16s} {100*n/allio:5.1f}%  (kernel leaf {100*aggk[b]/allio:4.1f}%)')
