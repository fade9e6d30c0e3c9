"""How gw's commands are declared: click commands and groups with gw's conventions.

- ``option`` and ``argument`` name each value's kind (``<str>``, ``<int>``, ``<path>``) and
  show defaults; arguments carry help, listed under "Arguments:".
- A command's summary in a command list is its first sentence, whole (click would cut a
  longer one to the terminal's width with "...").
- Groups list their commands in the order they were added.
- ``Group.main`` turns click's usage errors into gw's one ``error:`` line naming the help to
  read; the exit code stays click's (2).

Only click is imported here: a command pays for nothing else until it runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

F = TypeVar("F", bound=Callable[..., Any])

_KINDS: dict[Any, str] = {int: "<int>", str: "<str>", float: "<float>"}


def _kind(value_type: Any) -> str:
    if isinstance(value_type, click.IntRange) or value_type is click.INT:
        return "<int>"
    if isinstance(value_type, click.Path):
        return "<path>"
    return _KINDS.get(value_type, "<str>")


def option(*declarations: str, **attributes: Any) -> Callable[[F], F]:
    """``click.option`` with gw's metavar (``<int>``...) and defaults shown unless said."""
    if not attributes.get("is_flag") and not attributes.get("count"):
        attributes.setdefault("metavar", _kind(attributes.get("type", str)))
    attributes.setdefault("show_default", attributes.get("default") is not None)
    return click.option(*declarations, **attributes)


def path_type() -> click.Path:
    """A path value, as a ``pathlib.Path`` (not checked: the command says what is wrong)."""
    return click.Path(path_type=Path)


class Argument(click.Argument):
    """A positional argument with a help line."""

    def __init__(self, declarations: Sequence[str], help: str = "", **attributes: Any) -> None:
        super().__init__(declarations, **attributes)
        self.help = help

    def help_row(self) -> tuple[str, str]:
        kind = _kind(self.type)
        text = (self.help or "") + ("  [required]" if self.required else "")
        return f"{self.name} {kind}", text


def argument(name: str, help: str, **attributes: Any) -> Callable[[F], F]:
    """``click.argument`` with a help line and the argument's name in the usage line."""
    metavar = name + ("..." if attributes.get("nargs") == -1 else "")
    required = attributes.setdefault("required", True)
    attributes.setdefault("metavar", metavar if required else f"[{metavar}]")
    return click.argument(name, cls=Argument, help=help, **attributes)


def _first_sentence(text: str) -> str:
    first = re.split(r"\.\s", text, maxsplit=1)[0]
    return " ".join(first.split()).rstrip(".") + "."


class Command(click.Command):
    """A command whose help lists its arguments, and whose summary is a whole sentence."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_sentence(self.help or "")

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Spelled out: click's own argument section differs between its versions.
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        rows = [param.help_row() for param in self.get_params(ctx) if isinstance(param, Argument)]
        if rows:
            with formatter.section("Arguments"):
                formatter.write_dl(rows)
        self.format_options(ctx, formatter)
        self.format_epilog(ctx, formatter)


class Group(click.Group):
    """A group listing its commands in the order they were added."""

    command_class = Command

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _first_sentence(self.help or "")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:
            where = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
            error_line(f"{_usage_message(error).rstrip('.')}{where}")
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error_line(error.format_message())
            sys.exit(error.exit_code)
        except click.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


Group.group_class = Group


def _usage_message(error: click.UsageError) -> str:
    if isinstance(error, click.NoSuchOption):
        # Worded here: click's wording of this one changes between its versions.
        message = f"no such option: {error.option_name}"
        if error.possibilities:
            message += f" (did you mean {' or '.join(sorted(error.possibilities))}?)"
        return message
    return error.format_message()


def error_line(message: str) -> None:
    """``error: message`` on one line of stderr."""
    text = message.replace("\n", " ").strip().rstrip(".")
    sys.stderr.write(f"error: {text[:1].lower()}{text[1:]}\n")


def command(name: str, **attributes: Any) -> Callable[[Callable[..., Any]], Command]:
    """A gw command named ``name``."""
    return click.command(name, cls=Command, **attributes)


def group(name: str, help: str, **attributes: Any) -> Group:
    """A gw command group named ``name``."""
    return Group(name, help=help, **attributes)
