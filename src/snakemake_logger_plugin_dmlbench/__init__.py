"""Snakemake logger plugin `dmlbench` (profiles/default: ``logger: [dmlbench]``): the console
with one short line per job.

Snakemake's own console prints, per job, every input and output file, the reason with every
missing file, and the whole shell command: the full study's dry run was 177 KB with lines of
thousands of characters. This handler prints Snakemake's messages as its default handler does
(colours, headers, progress, errors with the failed job's log), except two:

- a job: one line, ``rule <name>: <wildcards> -> <first output> (+N files) [<reason>]``
  (the reason without its file lists: "Missing output files", "Params have changed ...");
- a shell command: one line, an option's list of paths cut to its first (``(+23 more)``);
- a job finished: one line with its wall time, and the progress line after it with an estimate
  of the time left at the pace so far (``12 of 36 steps (33%) done; ~4m10s left at this pace``).

The full detail stays in Snakemake's own log file (.snakemake/log/*.snakemake.log), which the
default file handler writes. A module of its own (not under dmlbench) because Snakemake finds
logger plugins by their module name, ``snakemake_logger_plugin_<name>``. ``--workflow-profile
none`` gives Snakemake's own console back.
"""

from __future__ import annotations

import re
import shlex
import sys
import time

from snakemake.logging import ColorizingTextHandler, DefaultFilter, DefaultFormatter, timestamp
from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from dmlbench.config.progress import duration

#: A printed shell command longer than this has its path lists cut.
MAX_COMMAND = 240
#: Lines of a job: at most this many characters of wildcards.
MAX_WILDCARDS = 80


def short_reason(reason) -> str:
    """Snakemake's reason without its file lists: each part up to its colon."""
    parts = [p.split(":", 1)[0].strip() for p in re.split(r";\s*", str(reason or "")) if p.strip()]
    return "; ".join(dict.fromkeys(parts))


def short_command(cmd: str, limit: int = MAX_COMMAND) -> str:
    """A shell command with each option's run of two or more arguments cut to its first,
    ``(+N more)`` for the rest, when the command is longer than ``limit``; a leading "Shell
    command: " is kept, and so is everything before the first option."""
    if not cmd or len(cmd) <= limit:
        return cmd
    prefix = ""
    if cmd.startswith("Shell command: "):
        prefix, cmd = "Shell command: ", cmd[len("Shell command: ") :]
    try:
        words = shlex.split(cmd, posix=True)
    except ValueError:
        return prefix + cmd[:limit] + " ..."
    out, run, seen_option = [], [], False

    def flush():
        if run:
            out.append(shlex.quote(run[0]))
            if len(run) > 1:
                out.append(f"(+{len(run) - 1} more)")
            run.clear()

    for word in words:
        if word.startswith("-") or word in (">", "2>&1", "|", ";", "&&"):
            flush()
            seen_option = True
            out.append(word if word in (">", "2>&1") else shlex.quote(word))
        elif seen_option:
            run.append(word)
        else:
            out.append(shlex.quote(word))
    flush()
    return prefix + " ".join(out)


def job_line(msg: dict) -> str:
    """One line for a job: rule, wildcards, first output and how many more, short reason."""
    kind = ("local" if msg.get("local") else "") + ("checkpoint" if msg.get("is_checkpoint") else "rule")
    wildcards = ", ".join(f"{k}={v}" for k, v in (msg.get("wildcards") or {}).items())
    if len(wildcards) > MAX_WILDCARDS:
        wildcards = wildcards[: MAX_WILDCARDS - 3] + "..."
    output = list(msg.get("output") or [])
    line = f"{kind} {msg.get('rule_name')}:"
    if wildcards:
        line += f" {wildcards}"
    if output:
        line += f" -> {output[0]}" + (f" (+{len(output) - 1} files)" if len(output) > 1 else "")
    reason = short_reason(msg.get("reason"))
    if reason:
        line += f" [{reason}]"
    return line


class Formatter(DefaultFormatter):
    """Snakemake's formatter with one line per job, per command, per finished job, and the
    progress line with an estimate. ``clock`` (seconds) is injectable for tests."""

    def __init__(self, quiet=None, show_failed_logs=False, clock=time.monotonic):
        super().__init__(quiet, show_failed_logs)
        self.clock = clock
        self.jobs: dict[int, tuple[str, float]] = {}  # jobid -> (rule and wildcards, start)
        self.first: float | None = None

    def format_job_info(self, msg):
        if msg.get("rule_msg"):
            return super().format_job_info(msg)
        line = job_line(msg)
        now = self.clock()
        self.first = now if self.first is None else self.first
        self.jobs[msg.get("jobid")] = (line.split(" -> ")[0].split(" [")[0], now)
        return line

    def format_shellcmd(self, msg):
        text = super().format_shellcmd(msg)
        # a `run:` job (the spec rules) has no shell command: nothing to print
        return "" if text in ("None", "Shell command: None") else short_command(text)

    def format_job_finished(self, msg):
        job = self.jobs.pop(msg.get("job_id"), None)
        if job is None:
            return super().format_job_finished(msg)
        what, start = job
        return f"{timestamp()} done {what} in {duration(self.clock() - start)}"

    def format_progress(self, msg):
        line = super().format_progress(msg)
        done, total = msg.get("done", 0), msg.get("total", 0)
        if self.first is None or not done or done >= total:
            return line
        left = (self.clock() - self.first) / done * (total - done)
        return f"{line}; ~{duration(left)} left at this pace"


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        settings = self.common_settings
        self._console = ColorizingTextHandler(
            nocolor=settings.nocolor,
            # the stream Snakemake's own console would use (stdout for a dry run)
            stream=sys.stdout if getattr(settings, "stdout", False) else sys.stderr,
            formatter=Formatter(settings.quiet, settings.show_failed_logs),
            filter=DefaultFilter(
                settings.quiet, settings.debug_dag, settings.verbose, settings.dryrun, settings.printshellcmds
            ),
        )

    def emit(self, record) -> None:
        if getattr(record, "event", None) == LogEvent.JOB_INFO:
            self._console.last_msg_was_job_info = True  # no blank line before each job: one line each
        self._console.handle(record)

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
