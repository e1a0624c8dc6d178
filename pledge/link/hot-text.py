#!/usr/bin/env python3
"""Regenerate pledge/link/hot-text.ld: the functions one `pledge bootstrap` executes, placed
together at the start of .text.

Why: the kernel maps a binary's code in 64 KiB windows around each page fault (fault-around),
so one executed function in every window of the 6.6 MB text made nearly all of it resident.
With the executed functions packed together, far fewer windows are touched (peak RSS of
`pledge bootstrap` 9.1 -> 7.2 MB). Nothing changes in what the code does; a pattern that
matches no section (another toolchain, renamed function) is ignored by the linker, and the
layout then degrades towards the default one. So regenerate it after changing the pledge's
build profile or toolchain: once the pledge was built with opt-level "z", the file made for
opt-level 3 left the bootstrap at 8.07 MB, and regenerating it brought that to 6.78 MB.

Steps (from the workspace root, release build as measured by `testbed bench`):

    cargo build --release -p pledge -p masa -p registrar -p testbed
    target/release/testbed bench --pledges 1 --concurrency 1 --keep   # prints "workdir"
    # start the daemons of that work dir again:
    target/release/masa serve --config WORKDIR/masa/masa.toml &
    target/release/registrar serve --config WORKDIR/registrar/registrar.toml &
    rm -f WORKDIR/pledges/BENCH-PLEDGE/state.json
    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=pledge.cg \
        target/release/pledge bootstrap --config WORKDIR/pledges/BENCH-PLEDGE/pledge.toml
    python3 pledge/link/hot-text.py target/release/pledge pledge.cg > pledge/link/hot-text.ld

Patterns: Rust symbols without their `17h<hash>E` suffix (the hash changes with features and
the toolchain) when no other big instance shares the name, else the exact symbol; each also
as `.text.unlikely.` (cold functions LLVM puts there). aws-lc C functions without the
versioned `aws_lc_X_Y_Z_` prefix. aws-lc assembly is one `.text` per object, and valgrind
does not run the AVX-512 paths the CPU may take: those objects are listed in ASM_OBJECTS.
"""

import bisect
import collections
import re
import subprocess
import sys

# aws-lc assembly objects (x86_64) on the bootstrap's path: TLS (AES-GCM, GHASH, X25519),
# ECDSA P-256, SHA-2, RSA/bignum Montgomery, RDRAND.
ASM_OBJECTS = [
    "aesni-gcm-x86_64",
    "aesni-gcm-avx512",
    "aesni-x86_64",
    "ghash-x86_64",
    "p256-x86_64-asm",
    "p256_beeu-x86_64-asm",
    "rdrand-x86_64",
    "sha256-x86_64",
    "sha512-x86_64",
    "x86_64-mont",
    "curve25519_x25519",
    "curve25519_x25519_alt",
    "curve25519_x25519base",
    "curve25519_x25519base_alt",
]

# Other instances of a generic function sharing a hash-less name may add this many bytes of
# code that does not run before the exact symbol is used instead.
MAX_EXTRA = 1024

HASH = re.compile(r"17h[0-9a-f]{16}E$")
LLVM_SUFFIX = re.compile(r"\.llvm\.\d+$")
AWS_LC_PREFIX = re.compile(r"^aws_lc_\d+_\d+_\d+_")
# Characters an unquoted linker-script pattern may hold (legacy mangling escapes the rest).
PLAIN = re.compile(r"^[A-Za-z0-9_.$]+$")


def text_symbols(binary):
    out = subprocess.run(
        ["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True
    ).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    syms.sort()
    return syms


def executed_addresses(callgrind_out, binary):
    """Instruction addresses executed in `binary` (callgrind --dump-instr=yes, positions
    "instr line", subposition compression)."""
    names = {}
    current = None
    last = 0
    skip_next = False
    addrs = set()
    ob = re.compile(r"^(c?ob)=\((\d+)\)(?: (.*))?$")
    with open(callgrind_out) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            m = ob.match(line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "ob":
                    current = names.get(m.group(2))
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            if line[0] not in "0123456789+-*":
                continue
            tok = line.split()[0]
            if tok.startswith("0x"):
                a = int(tok, 16)
            elif tok[0] == "+":
                a = last + int(tok[1:], 0)
            elif tok[0] == "-":
                a = last - int(tok[1:], 0)
            elif tok == "*":
                a = last
            else:
                a = int(tok, 0)
            last = a
            if skip_next:
                # The call site's inclusive cost: the call instruction, already counted.
                skip_next = False
                continue
            if current is not None and current.endswith(binary.split("/")[-1]):
                addrs.add(a)
    return addrs


def strip_hash(name):
    return HASH.sub("17h", LLVM_SUFFIX.sub("", name))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: hot-text.py PLEDGE_BINARY CALLGRIND_OUT > hot-text.ld")
    binary, profile = sys.argv[1], sys.argv[2]
    syms = text_symbols(binary)
    starts = [s[0] for s in syms]
    hot = set()
    for a in executed_addresses(profile, binary):
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0 and a < syms[i][0] + max(syms[i][1], 1):
            hot.add(i)
            # Identical functions are merged into one section named after any of them, the
            # others being aliases at the same address: all their names are patterns.
            j = i - 1
            while j >= 0 and syms[j][0] == syms[i][0]:
                hot.add(j)
                j -= 1
    size_by_name = collections.Counter()
    for _, size, name in syms:
        size_by_name[strip_hash(name)] += size
    hot_by_name = collections.Counter()
    for i in hot:
        hot_by_name[strip_hash(syms[i][2])] += syms[i][1]

    patterns, seen = [], set()
    for i in sorted(hot):
        name = syms[i][2]
        if name.startswith("_Z"):
            stripped = strip_hash(name)
            extra = size_by_name[stripped] - hot_by_name[stripped]
            pattern = stripped if extra <= MAX_EXTRA else LLVM_SUFFIX.sub("", name)
        elif name.startswith("_R"):
            # v0 mangling (the standard library): stable for one toolchain.
            pattern = LLVM_SUFFIX.sub("", name)
        else:
            pattern = AWS_LC_PREFIX.sub("aws_lc_*_", name)
        if not PLAIN.match(name) or pattern in seen:
            continue
        seen.add(pattern)
        patterns.append(pattern)

    print("/* Generated by pledge/link/hot-text.py: the code `pledge bootstrap` runs, first in")
    print("   .text (fewer 64 KiB fault-around windows touched). See that script. */")
    print("SECTIONS {")
    print("  .text : {")
    for p in patterns:
        print(f"    *(.text.{p}* .text.unlikely.{p}*)")
    for obj in ASM_OBJECTS:
        print(f"    *{obj}.o(.text)")
    print("  }")
    print("}")
    print("INSERT BEFORE .init;")
    print(f"{len(patterns)} patterns", file=sys.stderr)


if __name__ == "__main__":
    main()
