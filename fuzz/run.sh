#!/usr/bin/env bash
# Builds the DNS parser fuzz target with libFuzzer (+ AddressSanitizer) and runs it for a
# bounded time. Usage: fuzz/run.sh [seconds]   (default 60; CI runs it briefly)
# Crashes are written to fuzz/artifacts/ and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds="${1:-60}"
build=.build/fuzz
mkdir -p "$build" fuzz/corpus fuzz/artifacts

sources=(Sources/DNSResponder/Wire/*.swift Sources/DNSResponder/Table/*.swift
         Sources/DNSResponder/Engine/DNSQueryView.swift Sources/DNSResponder/Engine/DNSUpstreamAnswer.swift)
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name DNSFuzz \
  "${sources[@]}" fuzz/FuzzDNSParser.swift -o "$build/fuzz-dns-parser" > "$build/compile.log" 2>&1 \
  || { cat "$build/compile.log"; exit 1; }

# Seed corpus: a few real queries and answers (dig +qr would need a server; write them directly).
seed() { printf "$2" > "fuzz/corpus/$1"; }
seed query-a '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x09bar-paris\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01'
seed query-opt '\x12\x34\x01\x20\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x07example\x03com\x00\x00\x1c\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x0c\x00\x0a\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08'
seed answer-compressed '\x12\x34\x81\x80\x00\x01\x00\x02\x00\x01\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x06\x03cdn\xc0\x10\xc0\x2d\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x07\xc0\x10\x00\x06\x00\x01\x00\x00\x00\x05\x00\x16\xc0\x10\xc0\x10\x00\x00\x00\x01\x00\x00\x0e\x10\x00\x00\x03\x84\x00\x01\x51\x80\x00\x00\x00\x05'
seed pointer-loop '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01'

echo "== fuzzing the DNS parsers for ${seconds}s"
"$build/fuzz-dns-parser" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -timeout=5 \
  -artifact_prefix=fuzz/artifacts/ -print_final_stats=1 fuzz/corpus 2>&1 | tail -n 15
