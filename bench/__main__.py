"""./scripts/bench [scenario ...]: run scenarios; the last lines printed are one JSON line each."""

import importlib
import json
import pkgutil
import sys

from bench import scenarios
from bench.harness import open_context


def main(argv: list[str]) -> int:
    available = sorted(m.name for m in pkgutil.iter_modules(scenarios.__path__))
    wanted = argv or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"unknown scenario(s) {unknown}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    ctx, close = open_context()
    lines = []
    try:
        print(f"bench: /healthz baseline {json.dumps(ctx.healthz.as_dict())}", file=sys.stderr)
        for name in wanted:
            module = importlib.import_module(f"bench.scenarios.{name}")
            for line in module.run(ctx):
                print(f"bench: {name}: {json.dumps(line, ensure_ascii=False)}", file=sys.stderr)
                lines.append(line)
    finally:
        close()
    for line in lines:
        print(json.dumps(line, ensure_ascii=False))
    return 0 if all(line["ok"] for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
