#!/usr/bin/env bash
# What one synced megabyte costs the node's disk (issue 12, point 2; docs/RELIABILITY.md):
# the kernel's write_bytes (/proc/PID/io: bytes the process caused to be written to the
# storage layer, page cache included, what an SD card ends up absorbing) of `outpost sync`,
# per MB of content synced, on a real disk (not tmpfs, which has no write accounting).
#
#   bench/reliability/write_amplification.sh [OUTPOST_BINARY] [WORK_DIR]
#
# Two cases: one sync of a 32 MB release (32 files of random bytes, so zstd cannot shrink
# them), and 16 syncs of one 256 KB update each (the small, frequent updates of a field
# office). WORK_DIR must be on a real disk (default: a new folder under /var/tmp).
#
# Run as root (with losetup and mkfs.ext4), it also puts the store on a file system of its own,
# ext4 on a loop device, and reports what that file system wrote to its device after each sync
# and a syncfs: data, journal and metadata, the bytes an SD card would take (sectors written,
# /sys/block/loopN/stat). NO_DEVICE=1 keeps the store in WORK_DIR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:-$here/../../build/node/outpost}
work=${2:-$(mktemp -d /var/tmp/outpost-wa.XXXXXX)}
[ -x "$bin" ] || { echo "no outpost binary at $bin" >&2; exit 2; }
mnt=$work/mnt dev=""
cleanup() {
  if [ -n "$dev" ]; then umount "$mnt" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/keys" "$work/src"
op() { "$bin" "$@" >/dev/null; }
root=$("$bin" keygen --role root --out "$work/keys/root.key" | head -n 1)
for r in targets snapshot timestamp; do op keygen --role $r --out "$work/keys/$r.key"; done
pub=$("$bin" keygen --role publisher --out "$work/keys/un.key" | head -n 1)
op repo init "$work/repo" --keys "$work/keys"
op repo delegate "$work/repo" --keys "$work/keys" --publisher-pubkey "$pub" --prefix un/ga
publish() { op publish "$work/repo" --key "$work/keys/un.key" --keys "$work/keys" --bundle "$1" --patch-ladder "" "$2"; }
# wchar and write_bytes of one command ("WCHAR WRITE_BYTES"), read from this subshell's own
# accounting once the command has been reaped (a parent's /proc/PID/io includes its
# waited-for children). wchar: bytes handed to write system calls (LMDB writes every page
# with pwrite/writev, never through a writable map, so this is all it writes). write_bytes:
# the kernel's count of page-cache bytes dirtied; on kernels whose file systems use large
# folios it counts a whole folio for a 4 KB page, so it overstates.
# Then, with the store on its own device, the bytes written to that device, flushed
# ("WCHAR WRITE_BYTES DEVICE_BYTES"; DEVICE_BYTES 0 without a device).
sectors() { if [ -n "$dev" ]; then awk '{print $7}' "/sys/block/$dev/stat"; else echo 0; fi; }
written() {
  if [ -n "$dev" ]; then sync -f "$mnt"; fi
  local before io
  before=$(sectors)
  io=$(
    "$@" >/dev/null
    awk '/^wchar:/ {w=$2} /^write_bytes:/ {b=$2} END {print w, b}' "/proc/$BASHPID/io"
  )
  if [ -n "$dev" ]; then sync -f "$mnt"; fi
  echo "$io $((($(sectors) - before) * 512))"
}
store=$work/store
if [ "${NO_DEVICE:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v losetup >/dev/null &&
  command -v mkfs.ext4 >/dev/null; then
  truncate -s 512M "$work/device.img"
  mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$work/device.img"
  mkdir -p "$mnt"
  if mount -o loop "$work/device.img" "$mnt"; then
    dev=$(basename "$(findmnt -n -o SOURCE "$mnt")")
    store=$mnt/store
    echo "store on its own ext4 file system, device $dev"
  fi
fi
op subscribe "$work/repo" --root-pubkey "$root" --store "$store"

# 1. One 32 MB release.
mkdir -p "$work/src/big"
for i in $(seq 1 32); do head -c 1048576 /dev/urandom >"$work/src/big/part-$i.bin"; done
publish un/ga/big "$work/src/big"
read -r w b d < <(written "$bin" sync --store "$store")
awk -v w="$w" -v b="$b" -v d="$d" 'BEGIN { printf "one sync of 32 MB: wchar %d bytes (%.2f MB per synced MB), write_bytes %d (%.2f), device %d (%.2f)\n", w, w / 32 / 1048576, b, b / 32 / 1048576, d, d / 32 / 1048576 }'

# 2. 16 small updates of 256 KB each, one sync each.
mkdir -p "$work/src/small"
head -c 1048576 /dev/urandom >"$work/src/small/base.bin"
publish un/ga/small "$work/src/small"
op sync --store "$store"
tw=0 tb=0 td=0
for i in $(seq 1 16); do
  head -c 262144 /dev/urandom >"$work/src/small/update-$i.bin"
  publish un/ga/small "$work/src/small"
  read -r w b d < <(written "$bin" sync --store "$store")
  tw=$((tw + w)) tb=$((tb + b)) td=$((td + d))
done
awk -v w="$tw" -v b="$tb" -v d="$td" 'BEGIN { printf "16 syncs of 256 KB: wchar %d bytes (%.2f MB per synced MB, %.0f KB per sync), write_bytes %d (%.2f), device %d (%.2f)\n", w, w / 4 / 1048576, w / 16 / 1024, b, b / 4 / 1048576, d, d / 4 / 1048576 }'
read -r w b d < <(written "$bin" sync --store "$store")
echo "a sync that finds nothing new: wchar $w bytes, write_bytes $b, device $d"
ls -l "$store/data.mdb" | awk '{printf "data.mdb at the end: %d bytes\n", $5}'
