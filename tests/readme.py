"""Reading the README's runnable parts, so that tests can hold the README to its word."""

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Example:
    command: str
    expected: list[str]
    """Each ``#=>`` line after the command: what it prints, line by line."""


def api_examples() -> list[Example]:
    """The shell commands between ``<!-- examples -->`` and ``<!-- /examples -->``, in order;
    a line starting with ``curl`` or ``KEY=`` starts a command, other lines continue it."""
    text = README.read_text()
    section = text.split("<!-- examples -->")[1].split("<!-- /examples -->")[0]
    examples: list[Example] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("#=>"):
                examples[-1].expected.append(line.removeprefix("#=>").strip())
            elif line.startswith(("curl ", "KEY=")):
                examples.append(Example(line, []))
            else:
                examples[-1] = Example(examples[-1].command + "\n" + line, examples[-1].expected)
    return examples


def documented_settings() -> set[str]:
    """The ``CRMDEALS_*`` variables in the README's configuration table."""
    return set(re.findall(r"^\| `(CRMDEALS_[A-Z_]+)` \|", README.read_text(), flags=re.MULTILINE))


def push_example() -> tuple[str, list[str]]:
    """The shell script between ``<!-- push-example -->`` and ``<!-- /push-example -->``,
    without its ``#=>`` lines, and those lines: what it prints, in order."""
    text = README.read_text()
    section = text.split("<!-- push-example -->")[1].split("<!-- /push-example -->")[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    lines = block.splitlines()
    expected = [line.removeprefix("#=>").strip() for line in lines if line.startswith("#=>")]
    script = "\n".join(line for line in lines if not line.startswith("#=>"))
    return script, expected


def integration_test_example() -> str:
    """The Python test file between ``<!-- testing-example -->`` and its end marker."""
    return _python_file("testing-example")


def webhook_test_example() -> str:
    """The Python test file between ``<!-- webhook-testing-example -->`` and its end marker."""
    return _python_file("webhook-testing-example")


def _python_file(marker: str) -> str:
    text = README.read_text()
    section = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (block,) = blocks
    return block


def panel_link_example() -> str:
    """The shell command between ``<!-- panel-link-example -->`` and its end marker."""
    text = README.read_text()
    section = text.split("<!-- panel-link-example -->")[1].split("<!-- /panel-link-example -->")[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return str(block)


def images() -> list[str]:
    """The paths of the images the README shows (``<img src="...">``)."""
    return re.findall(r'<img src="([^"]+)"', README.read_text())
