"""docs/usage.md holds both scripts' whole ``-h``, made from their parsers: this test fails when a flag changes
and the page does not. Regenerate the page's two blocks with ``python tests/test_docs.py``. And README.md stays a
front page: at most 300 lines, every page under docs/ it links to there."""

import os
import re

from conftest import ROOT

import main
import main_atari

USAGE = ROOT / "docs" / "usage.md"
WIDTH = 120  # columns of the help as printed in the page


def help_texts() -> dict[str, str]:
    """``main.py -h`` and ``main_atari.py -h`` at WIDTH columns, as argparse prints them."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse's formatter reads the width from it
    try:
        return {"main.py": main.build_main_parser().format_help(),
                "main_atari.py": main_atari.build_atari_parser().format_help()}
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def help_block(text: str, script: str) -> re.Match:
    """The fenced block of ``text`` that starts with ``usage: <script>``."""
    match = re.search(rf"```\n(usage: {re.escape(script)}\s.*?)```\n", text, flags=re.S)
    assert match, f"docs/usage.md has no block starting 'usage: {script}'"
    return match


def test_usage_page_holds_each_scripts_whole_help():
    page = USAGE.read_text()
    for script, text in help_texts().items():
        assert help_block(page, script).group(1) == text, \
            f"docs/usage.md's -h of {script} is out of date: run python tests/test_docs.py"


def test_readme_is_a_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    for page in ("usage", "your-env", "atari", "torchrun", "checkpoints", "results", "speed"):
        assert f"docs/{page}.md" in linked, page
    for target in linked:
        assert (ROOT / target).exists(), target
    for page in (ROOT / "docs").glob("*.md"):  # the pages' own relative links
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def regenerate() -> None:
    page = USAGE.read_text()
    for script, text in help_texts().items():
        block = help_block(page, script)
        page = page[:block.start(1)] + text + page[block.end(1):]
    USAGE.write_text(page)


if __name__ == "__main__":
    regenerate()
