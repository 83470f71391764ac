#!/usr/bin/env bash
# Transport-data AEAD on this machine: libsodium's ChaCha20-Poly1305 against
# ours (tunnel/aead.c: OpenSSL's ChaCha20 and Poly1305) on any buffer and on
# buffers with the data path's room (xb_aead_seal_inplace + xb_aead_open_room),
# seal + open, Gbit/s per core of CPU time, at 64, 512, 768 and 1 420-byte
# packets.
b=${XB_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}/bin/xb-aeadbench
[ -x "$b" ] || { echo "aead bench: $b is not built"; exit 1; }
for n in 64 512 768 1420; do "$b" "${SECS:-3}" "$n" || exit 1; done
