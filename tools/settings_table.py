"""README's settings table, printed from `app.core.config.SETTINGS` so the two never disagree.

`python -m tools.settings_table` prints it; `--write` puts it into README.md between its markers.
"""

import sys
from typing import Any

from app.core.config import PROJECT_ROOT, SETTINGS, Setting

README = PROJECT_ROOT / "README.md"
START = "<!-- settings: printed by `python -m tools.settings_table --write` from app/core/config.py -->"
END = "<!-- end of settings -->"


def shown_default(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    value: Any = setting.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {shown_default(s)} | {s.doc} |" for s in SETTINGS]
    return "\n".join(rows)


def readme_table(readme: str) -> str:
    """The table README.md holds between the markers."""
    return readme.split(START, 1)[1].split(END, 1)[0].strip()


def write_readme() -> None:
    readme = README.read_text()
    before, rest = readme.split(START, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{START}\n{settings_table()}\n{END}{after}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme()
    else:
        print(settings_table())
