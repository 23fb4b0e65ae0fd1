#!/usr/bin/env python3
"""Puts a bench report into docs/BENCHMARKS.md between its section markers.

    splice.py DOC SECTION REPORT

Replaces what lies between `<!-- bench:SECTION:begin -->` and `<!-- bench:SECTION:end -->`
in DOC with REPORT, its headings moved two levels down (a report's `#` title becomes `###`
under the document's `##` sections). Without the markers, the section is appended at the end.
The text outside the markers (the prose around each result) is never touched.
"""
import re
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    doc, section, report = sys.argv[1:]
    with open(report, encoding="utf-8") as f:
        body = re.sub(r"^(#+) ", r"##\1 ", f.read().strip(), flags=re.M)
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{body}\n{end}"
    try:
        with open(doc, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n"
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(doc, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{doc}: section {section} updated", file=sys.stderr)


if __name__ == "__main__":
    main()
