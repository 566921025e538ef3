"""Packs the sweep records of this result into records/<entry>.jsonl.xz, and unpacks them.

The raw records are about 11 MB per zoo entry (19,500 lines of JSON); compressed losslessly
they are still about 0.9 MB per entry, 9 MB in all, over the few MB a repository should carry.
Two thirds of that is the per-iteration trace of the PGD cells (prediction and loss after
every step, 92,500 points per entry), which only the PGD curves of Fig. 2 read. So the packed
copy keeps every record byte for byte, except that PGD records lose their `trace` field:
- everything the paper claims, stress-strain curves, classes, box plots, the CAM choice and
  every table except `pgd_breaking` come out of `bbed report` on the packed copy exactly as on
  the raw records (checked when the result was committed, see README.md);
- the LocalSearch and GenAttack traces stay (the black-box stress curves are read from them);
- Fig. 2 and the `pgd_breaking` tables need the PGD traces: a report from the packed copy
  leaves them out, and report/ has them as computed from the raw records.

Usage:
  python3 pack_records.py pack SWEEP_DIR...   # each SWEEP_DIR/results.jsonl -> records/<kind>.jsonl.xz
  python3 pack_records.py unpack OUT_DIR      # records/*.jsonl.xz -> OUT_DIR/<kind>.jsonl
"""
import json
import lzma
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = os.path.join(HERE, "records")
TRACE = re.compile(r',"trace":\[[^\]]*\]')


def pack(sweep_dirs):
    os.makedirs(RECORDS, exist_ok=True)
    for d in sweep_dirs:
        src = os.path.join(d, "results.jsonl")
        kind = os.path.basename(os.path.normpath(d))
        dst = os.path.join(RECORDS, kind + ".jsonl.xz")
        tmp = dst + ".tmp"
        n = 0
        with open(src, encoding="utf-8") as f, lzma.open(tmp, "wt", encoding="utf-8",
                                                         preset=9 | lzma.PRESET_EXTREME) as out:
            for lineno, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{src}:{lineno}: not JSON ({e})")
                if r.get("attack") == "pgd" and "trace" in r["result"]:
                    # Cut the text rather than re-serialise, so every other byte stays as bbed
                    # wrote it (a trace holds flat objects, no nested arrays); then check that
                    # the cut line is the record without its trace.
                    line = TRACE.sub("", line, count=1)
                    del r["result"]["trace"]
                    if json.loads(line) != r:
                        sys.exit(f"{src}:{lineno}: could not cut the PGD trace cleanly")
                out.write(line if line.endswith("\n") else line + "\n")
                n += 1
        os.replace(tmp, dst)
        print(f"{dst}: {n} records, {os.path.getsize(dst) / 1e6:.2f} MB")


def unpack(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(RECORDS)):
        if not name.endswith(".jsonl.xz"):
            continue
        dst = os.path.join(out_dir, name[:-3])
        if os.path.exists(dst):
            sys.exit(f"{dst} exists; not overwriting it")
        with lzma.open(os.path.join(RECORDS, name), "rb") as f, open(dst + ".tmp", "wb") as out:
            out.write(f.read())
        os.replace(dst + ".tmp", dst)
        print(dst)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "pack":
        pack(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "unpack":
        unpack(sys.argv[2])
    else:
        sys.exit(__doc__)
