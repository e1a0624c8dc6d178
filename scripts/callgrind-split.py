#!/usr/bin/env python3
"""Instructions per enrollment of the registrar and the MASA, from the callgrind files of
scripts/bench-instructions.sh, split by crate.

Each argument is one `testbed bench` run's directory, named `run<R>-<COUNT>`, holding the bench
report (`report.json`) and one callgrind file per daemon (`<pid>.callgrind`). For each run R,
the instructions per enrollment of a process are (Ir(high) - Ir(low)) / (high - low): what
starting and stopping cost cancels out. The split by crate is of self cost (instructions in a
function's own code, after inlining), grouped by the crate of the function's symbol.
"""

import argparse
import json
import os
import re
import sys
from collections import defaultdict

PROCESSES = ("registrar", "masa")
STD = {"core", "alloc", "std", "std_detect", "panic_unwind", "compiler_builtins"}
STD_GROUP = "core/alloc/std"
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def first_segment(path):
    """The crate of a Rust path (`rustls::conn::X` -> `rustls`); a primitive or a type
    parameter (`u8`, `[T]`, `&T`) counts as core."""
    s = path.lstrip()
    for prefix in ("&", "mut ", "*const ", "*mut ", "dyn ", "[", "(", "impl "):
        while s.startswith(prefix):
            s = s[len(prefix):].lstrip()
    m = IDENT.match(s)
    if not m or not s[m.end():].startswith("::"):
        return "core"
    return m.group(0)


def split_qualified(name):
    """`<A as B>::rest` -> (A, B); `<A>::rest` -> (A, None)."""
    depth = 0
    as_at = None
    for i, c in enumerate(name):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
            if depth == 0:
                inner = name[1:i]
                if as_at is None:
                    return inner, None
                return name[1:as_at], name[as_at + 4:i]
        elif depth == 1 and name.startswith(" as ", i):
            as_at = i
    return name[1:], None


def rust_crate(name):
    """The crate of a demangled Rust symbol. For `<A as B>::f`, the crate of A, unless A is
    of core/alloc/std (or a primitive) and B is not: then B's (the impl is in B's crate or
    in the caller's, not in std)."""
    if name.startswith("<"):
        a, b = split_qualified(name)
        ca = first_segment(a)
        if b is not None:
            cb = first_segment(b)
            if ca in STD and cb not in STD:
                return cb
        return ca
    return first_segment(name)


AWS_LC_C = re.compile(
    r"^(aws_lc_|bn_|BN_|ec_|EC_|ecp_|p256_|fiat_|x25519_|sha\d+_block|aes_|gcm_|CRYPTO_|"
    r"ChaCha20|chacha20_|poly1305_|OPENSSL_|EVP_|ECDSA_|RSA_|x86_64_|bignum_|edwards25519_|"
    r"curve25519_|ed25519_|md32_|HMAC_|HKDF|RAND_|rand_|OBJ_|ERR_|ASN1_|CBB_|CBS_|beeu_|"
    r"abi_test_|ecdsa_|boringssl_|jent_|s2n_|keccak|mlkem_|MLKEM|KYBER|kyber)"
)


def group(name, ob, fl):
    """The group a function's self cost counts for."""
    base = os.path.basename(ob or "")
    if base.startswith(("ld-linux", "ld-", "libc.so", "libc-", "libm.so", "libpthread", "libgcc_s", "libdl")):
        return "libc/ld.so"
    if base.startswith("vgpreload") or "valgrind" in base:
        return "valgrind"
    if base.startswith(("libssl", "libcrypto")):
        return "openssl (C)"
    if ".so" in base:
        return base.split(".so")[0]
    if "::" in name or name.startswith("<"):
        crate = rust_crate(name)
        return STD_GROUP if crate in STD else crate
    fl = fl or ""
    if "aws-lc" in fl or AWS_LC_C.match(name):
        return "aws-lc (C)"
    if "sqlite" in fl or name.startswith("sqlite3"):
        return "sqlite (C)"
    if "mimalloc" in fl or name.startswith(("mi_", "_mi_")):
        return "mimalloc (C)"
    if name.startswith(("__rust_", "__rdl_", "__rg_", "rust_")):
        return STD_GROUP
    if name.startswith(("mem", "str", "__mem", "__str")):
        return "libc/ld.so"
    return "other (C)"


def parse(path):
    """(command line, total Ir, {group: self Ir}) of one callgrind file."""
    names = {"fn": {}, "fl": {}, "ob": {}}
    cmd = ""
    total = None
    positions = 1
    events = None
    cur = {"fn": "", "fl": "", "ob": ""}
    skip_next = False
    by_group = defaultdict(int)
    by_fn = defaultdict(int)

    def name_of(kind, value):
        # `(id) name` defines a compressed name, `(id)` uses it, `name` is uncompressed.
        value = value.strip()
        if value.startswith("("):
            end = value.index(")")
            key, rest = value[1:end], value[end + 1:].strip()
            if rest:
                names[kind][key] = rest
            return names[kind].get(key, "?")
        return value

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                toks = line.split()
                if len(toks) > positions:
                    by_fn[(cur["ob"], cur["fl"], cur["fn"])] += int(toks[positions])
                continue
            if not line.strip():
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key in ("fn", "fl", "ob"):
                cur[key] = name_of(key, value)
            elif key in ("fi", "fe"):
                name_of("fl", value)  # an inlined file: keep the function's own file
            elif key in ("cfn", "cfi", "cfl", "cob"):
                name_of({"cfn": "fn", "cfi": "fl", "cfl": "fl", "cob": "ob"}[key], value)
            elif key == "calls":
                skip_next = True  # the next cost line is the call's inclusive cost
            elif line.startswith("cmd:"):
                cmd = line[4:].strip()
            elif line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if events and events[0] != "Ir":
        sys.exit(f"{path}: first event is {events[0]}, not Ir")
    for (ob, fl, fn), ir in by_fn.items():
        by_group[group(fn, ob, fl)] += ir
    if total is None:
        total = sum(by_group.values())
    return cmd, total, dict(by_group)


def process_of(cmd):
    words = cmd.split()
    for w in words:
        base = os.path.basename(w)
        if base in PROCESSES:
            return base
    return None


def load_run(directory):
    """{process: (total Ir, {group: Ir})} of one bench run, after checking its report."""
    report_path = os.path.join(directory, "report.json")
    with open(report_path, encoding="utf-8") as f:
        report = json.loads(f.read().strip().splitlines()[-1])
    if report.get("failures") != 0 or report.get("daemons_stopped_cleanly") is not True:
        sys.exit(f"{directory}: the bench run failed or a daemon did not stop cleanly: {report}")
    out = {}
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".callgrind"):
            continue
        cmd, total, groups = parse(os.path.join(directory, entry))
        proc = process_of(cmd)
        if proc is None:
            continue
        if proc in out:
            sys.exit(f"{directory}: two callgrind files of {proc}")
        out[proc] = (total, groups)
    missing = [p for p in PROCESSES if p not in out]
    if missing:
        sys.exit(f"{directory}: no callgrind file of {', '.join(missing)} (see the daemon logs)")
    return report["enrollments"], out


def fmt(n):
    return f"{n:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--top", type=int, default=8, help="crates listed per process")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()

    runs = defaultdict(dict)  # run -> count -> {process: (total, groups)}
    for d in args.dirs:
        m = re.fullmatch(r"run(\d+)-(\d+)", os.path.basename(os.path.normpath(d)))
        if not m:
            sys.exit(f"{d}: not a run<R>-<COUNT> directory")
        enrolled, data = load_run(d)
        if enrolled != int(m.group(2)):
            sys.exit(f"{d}: {enrolled} enrollments, not {m.group(2)}")
        runs[int(m.group(1))][enrolled] = data

    results = []
    for r in sorted(runs):
        counts = sorted(runs[r])
        if len(counts) != 2:
            sys.exit(f"run {r}: needs two enrollment counts, has {counts}")
        lo, hi = counts
        per = {}
        for p in PROCESSES:
            (t_lo, g_lo), (t_hi, g_hi) = runs[r][lo][p], runs[r][hi][p]
            ir = (t_hi - t_lo) / (hi - lo)
            groups = {
                g: (g_hi.get(g, 0) - g_lo.get(g, 0)) / (hi - lo)
                for g in set(g_lo) | set(g_hi)
            }
            per[p] = {
                "ir_per_enrollment": round(ir),
                "startup_and_shutdown_ir": round(t_lo - lo * ir),
                "ir_total": {str(lo): t_lo, str(hi): t_hi},
                "by_crate": groups,
            }
        results.append({"run": r, "enrollments": [lo, hi], "processes": per})

    summary = {}
    for p in PROCESSES:
        values = [x["processes"][p]["ir_per_enrollment"] for x in results]
        mean = sum(values) / len(values)
        spread = 100.0 * (max(values) - min(values)) / mean if mean else 0.0
        crates = defaultdict(float)
        for x in results:
            for g, v in x["processes"][p]["by_crate"].items():
                crates[g] += v / len(results)
        total = sum(v for v in crates.values() if v > 0)
        ranked = sorted(crates.items(), key=lambda kv: -kv[1])
        summary[p] = {
            "ir_per_enrollment": round(mean),
            "runs": values,
            "spread_pct": round(spread, 3),
            "startup_and_shutdown_ir": round(
                sum(x["processes"][p]["startup_and_shutdown_ir"] for x in results) / len(results)
            ),
            "by_crate": [
                {"crate": g, "ir_per_enrollment": round(v), "share_pct": round(100.0 * v / total, 2)}
                for g, v in ranked
                if round(v) != 0
            ],
        }

    if args.json:
        for x in results:
            for p in PROCESSES:
                x["processes"][p]["by_crate"] = {
                    g: round(v) for g, v in sorted(x["processes"][p]["by_crate"].items())
                }
        print(json.dumps({"summary": summary, "runs": results}, indent=2))
        return

    lo, hi = results[0]["enrollments"]
    print(
        f"Instructions (callgrind Ir) per enrollment: (Ir({hi}) - Ir({lo})) / {hi - lo}, "
        f"HTTPS, SQLite, concurrency 1, {len(results)} run(s)"
    )
    head = f"{'process':<10} {'Ir/enrollment':>14} " + " ".join(
        f"{'run ' + str(x['run']):>14}" for x in results
    ) + f" {'spread':>8} {'startup+stop Ir':>16}"
    print(head)
    for p in PROCESSES:
        s = summary[p]
        print(
            f"{p:<10} {fmt(s['ir_per_enrollment']):>14} "
            + " ".join(f"{fmt(v):>14}" for v in s["runs"])
            + f" {s['spread_pct']:>7.2f}% {fmt(s['startup_and_shutdown_ir']):>16}"
        )
    for p in PROCESSES:
        s = summary[p]
        print()
        print(f"{p}: self cost by crate, per enrollment (mean of runs)")
        rows = s["by_crate"]
        for row in rows[: args.top]:
            print(f"  {row['crate']:<24} {fmt(row['ir_per_enrollment']):>14} {row['share_pct']:>6.1f}%")
        rest = rows[args.top:]
        if rest:
            ir = sum(r["ir_per_enrollment"] for r in rest)
            share = sum(r["share_pct"] for r in rest)
            print(f"  {'(' + str(len(rest)) + ' others)':<24} {fmt(ir):>14} {share:>6.1f}%")


if __name__ == "__main__":
    main()
