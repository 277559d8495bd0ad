#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets from the golden frames (testdata/golden):
whole frames for `frame`, JSON and binary headers, and registration bodies (prefixed with the
selector byte `register_body` reads). Deterministic names, so re-running adds nothing new."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(ROOT, "..", "testdata", "golden")
FILES = ["java-5.3.3-examples.jsonl", "rocketmq-rust-broker-1.0.0.jsonl"]


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    if not os.path.isdir(GOLDEN):
        sys.exit("fuzz/seed.py: golden frames not found (testdata/golden)")
    n = 0
    for file in FILES:
        with open(os.path.join(GOLDEN, file)) as f:
            for line in f:
                e = json.loads(line)
                for side in ("request", "response"):
                    hexed = e.get(f"{side}_hex")
                    if not hexed:
                        continue
                    frame = bytes.fromhex(hexed)
                    n += 1
                    write("frame", f"seed-{n:03}", frame)
                    header_len = int.from_bytes(frame[5:8], "big")
                    header, body = frame[8:8 + header_len], frame[8 + header_len:]
                    if frame[4] == 0:
                        write("header_json", f"seed-{n:03}", header)
                    else:
                        write("header_binary", f"seed-{n:03}", header)
                    if side == "request" and e["request_header"].get("code") == 103 and body:
                        compressed = (e["request_header"].get("extFields") or {}).get("compressed") == "true"
                        write("register_body", f"seed-{n:03}", bytes([1 if compressed else 0]) + body)
    # No golden frame has a binary header: one GET_ROUTEINFO_BY_TOPIC in RocketMQSerializable's layout.
    ext = b"".join(len(k).to_bytes(2, "big") + k + len(v).to_bytes(4, "big") + v for k, v in [(b"topic", b"TopicTest")])
    binary = ((105).to_bytes(2, "big") + bytes([0]) + (479).to_bytes(2, "big") + (7).to_bytes(4, "big")
              + (0).to_bytes(4, "big") + (0).to_bytes(4, "big") + len(ext).to_bytes(4, "big") + ext)
    write("header_binary", "seed-route-request", binary)
    write("frame", "seed-route-request-binary", (4 + len(binary)).to_bytes(4, "big")
          + ((1 << 24) | len(binary)).to_bytes(4, "big") + binary)
    print(f"fuzz/seed.py: seeds from {n} golden frames in fuzz/corpus/")


if __name__ == "__main__":
    main()
