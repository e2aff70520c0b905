"""Print the first N ```bash blocks of a README, one command line per block."""

import sys

path, count = sys.argv[1], int(sys.argv[2])
blocks, current = [], None
for line in open(path, encoding="utf-8"):
    stripped = line.strip()
    if current is None and stripped == "```bash":
        current = []
    elif current is not None and stripped == "```":
        blocks.append(" ".join(part.rstrip("\\").strip() for part in current if part.strip()))
        current = None
        if len(blocks) == count:
            break
    elif current is not None:
        current.append(line)
for block in blocks:
    print(block)
