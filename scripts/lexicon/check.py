#!/usr/bin/env python3
"""Checks the bundled lexicon parts: format, dictionary membership, uniqueness, cell counts.
Usage: python3 scripts/lexicon/check.py [style ...]   (default: every part present)"""
import json, re, sys, pathlib, collections
ROOT = pathlib.Path(__file__).resolve().parents[2] / "data" / "lexicon"
STYLES = ["classical", "modern", "romantic", "neutral"]
COMPLEXITIES = ["simple", "beautiful", "complex", "plain"]
ERAS = ["shakespearean", "victorian", "modernist", "contemporary"]
POS = {"noun", "verb", "adjective", "adverb"}
DEFAULT = {("classical","simple","shakespearean"),("modern","beautiful","victorian"),("romantic","complex","modernist"),("neutral","plain","contemporary"),
           ("classical","beautiful","modernist"),("modern","complex","contemporary"),("romantic","plain","shakespearean"),("neutral","simple","victorian"),
           ("classical","complex","shakespearean"),("modern","plain","victorian"),("romantic","simple","modernist"),("neutral","beautiful","contemporary")}
words = set()
for f in ["american-english-large", "british-english-large", "american-english", "british-english"]:
    p = pathlib.Path("/usr/share/dict") / f
    if p.exists():
        words |= {w.strip() for w in p.read_text(encoding="utf-8", errors="ignore").splitlines()}
if not words:
    sys.exit("install Debian's wamerican-large and wbritish-large first")
styles = sys.argv[1:] or [s for s in STYLES if (ROOT / f"{s}.jsonl").exists()]
seen = {}
errors = []
counts = collections.Counter()
for s in STYLES:
    path = ROOT / f"{s}.jsonl"
    if not path.exists():
        continue
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            e = json.loads(line)
        except Exception as ex:
            errors.append(f"{where}: bad JSON ({ex})"); continue
        w = e.get("word", "")
        if set(e) != {"word","partOfSpeech","definition","style","complexity","era"}:
            errors.append(f"{where}: fields {sorted(e)}")
        if not re.fullmatch(r"[a-z]{3,16}", w): errors.append(f"{where}: bad word {w!r}")
        if w not in words: errors.append(f"{where}: {w!r} not in the Debian word lists")
        if e.get("partOfSpeech") not in POS: errors.append(f"{where}: bad partOfSpeech {e.get('partOfSpeech')!r}")
        d = e.get("definition", "")
        if not (10 <= len(d) <= 160) or "\n" in d: errors.append(f"{where}: definition length {len(d)}")
        if e.get("style") != s: errors.append(f"{where}: style {e.get('style')!r} in {s}.jsonl")
        if e.get("complexity") not in COMPLEXITIES: errors.append(f"{where}: bad complexity")
        if e.get("era") not in ERAS: errors.append(f"{where}: bad era")
        if w in seen and s in styles: errors.append(f"{where}: {w!r} duplicates {seen[w]}")
        seen.setdefault(w, where)
        counts[(e.get("style"), e.get("complexity"), e.get("era"))] += 1
for s in styles:
    for c in COMPLEXITIES:
        for r in ERAS:
            need = 100 if (s, c, r) in DEFAULT else 10
            if counts[(s, c, r)] < need:
                errors.append(f"cell {s}/{c}/{r}: {counts[(s, c, r)]} words, needs >= {need}")
for s in styles:
    print(s, sum(v for k, v in counts.items() if k[0] == s), "entries")
print("\n".join(errors[:200]) or "OK")
print(f"{len(errors)} problems")
sys.exit(1 if errors else 0)
