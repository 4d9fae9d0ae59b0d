"""Speech: every turn spoken by espeak-ng, into a WAV file each.

Interrupt safety. podflow stops a generation by raising an exception in its
thread asynchronously (cancellation, lost lease, soft time limit). Such an
exception lands only while the thread runs Python code: never inside a
blocking call, but right after one returns, which may be deep inside
``subprocess.Popen`` after the fork, losing the child's pid. So the
generator's thread never starts or waits on a process itself. A supervisor
thread, which nothing interrupts, owns the espeak-ng processes: it starts
one per turn the generator's thread allows (after that thread's
cancellation check), polls them, enforces their deadlines and kills what is
still running when it is told to stop. The generator's thread only waits on
the supervisor's events with short timeouts, and in ``finally`` stops it and
waits until it is gone. The caller owns the turn files (see
:mod:`podflow.generation.episode`, which removes them however it ends).

A turn that outlives ``tts_timeout_s`` fails the attempt with
:class:`TransientGenerationError`: espeak-ng speaks a turn in well under a
second, so a timeout means an overloaded or stuck machine, which a later
attempt may not meet; PODFLOW_MAX_ATTEMPTS bounds the retries. espeak-ng
exiting with an error is permanent (:class:`GenerationError` with its
stderr): the same text and voice would fail again.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import GenerationError, TransientGenerationError
from .espeak import espeak_command, find_espeak

__all__ = ["POLL_S", "SpeechJob", "synthesize"]

#: the longest the generator's thread and the supervisor wait at a time
POLL_S = 0.02
#: how often the supervisor looks at its processes (it is woken at once for new work)
_SUPERVISOR_POLL_S = 0.005
#: seconds to reap a killed process (SIGKILL cannot be ignored; this only bounds a zombie)
_REAP_S = 5.0
_STDERR_CHARS = 500


@dataclass(frozen=True, slots=True)
class SpeechJob:
    voice: str
    text: str


@dataclass(slots=True)
class _Running:
    index: int
    proc: subprocess.Popen[bytes]
    wav: Path
    err: Path
    deadline: float


def synthesize(
    jobs: Sequence[SpeechJob],
    *,
    out_dir: Path,
    timeout_s: float,
    parallelism: int,
    check: Callable[[], None] = lambda: None,
    on_done: Callable[[int, int], None] = lambda done, total: None,
    on_wav: Callable[[int, Path], None] | None = None,
) -> list[Path]:
    """Speak each job into ``out_dir/turn_NNNN.wav``, up to ``parallelism`` at once.

    ``check`` runs before each process starts (a cancellation check),
    ``on_wav(index, path)`` as each WAV is complete, then ``on_done(done,
    total)``; all three run in the caller's thread and may raise to stop.
    Returns the WAV paths in job order. The caller owns ``out_dir`` and its files.

    Raises:
      ToolMissing: espeak-ng is not installed.
      GenerationError: espeak-ng failed on a turn (its stderr in the message).
      TransientGenerationError: a turn took longer than ``timeout_s``.
    """
    program = find_espeak()
    out_dir.mkdir(parents=True, exist_ok=True)
    supervisor = _Supervisor(program, jobs, out_dir=out_dir, timeout_s=timeout_s)
    allowed = done = 0
    try:
        supervisor.start()
        while done < len(jobs):
            while allowed < len(jobs) and allowed - done < max(1, parallelism):
                check()
                allowed += 1
                supervisor.allow(allowed)
            try:
                event = supervisor.events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(event, BaseException):
                raise event
            if on_wav is not None:
                on_wav(event, supervisor.wavs[event])
            done += 1
            on_done(done, len(jobs))
    finally:
        supervisor.stop()
    return supervisor.wavs


# -- the supervisor ------------------------------------------------------------------


class _Supervisor(threading.Thread):
    """Owns the espeak-ng processes of one synthesis (see the module docstring).

    Starts job ``i`` once :meth:`allow` lets more than ``i`` jobs start; puts
    the index of each finished job on ``events``, or the exception that ends
    the synthesis. Whatever
    ends it, the processes still running are killed and reaped.
    """

    def __init__(self, program: str, jobs: Sequence[SpeechJob], *, out_dir: Path, timeout_s: float) -> None:
        super().__init__(name="podflow-espeak", daemon=True)
        self.program, self.jobs, self.out_dir, self.timeout_s = program, jobs, out_dir, timeout_s
        self.wavs = [out_dir / f"turn_{i:04d}.wav" for i in range(len(jobs))]
        self.events: queue.SimpleQueue[int | BaseException] = queue.SimpleQueue()
        self._allowed = 0  # how many jobs may start; only the generator's thread raises it
        self._wake = threading.Event()
        self._stop_requested = False

    def allow(self, count: int) -> None:
        """Let the first ``count`` jobs start."""
        self._allowed = count
        self._wake.set()

    def stop(self) -> None:
        """Stop synthesis and wait until every process is gone (in short waits,
        so that the caller can still be interrupted)."""
        self._stop_requested = True
        self._wake.set()
        while self.is_alive():
            self.join(POLL_S)

    def run(self) -> None:
        running: dict[int, _Running] = {}
        started = 0
        try:
            while not self._stop_requested and (started < len(self.jobs) or running):
                while started < min(self._allowed, len(self.jobs)):
                    running[started] = self._start(started)
                    started += 1
                for item in [r for r in running.values() if r.proc.poll() is not None]:
                    del running[item.index]
                    self._check_exit(item)
                    self.events.put(item.index)
                self._check_deadlines(running.values())
                self._wake.wait(_SUPERVISOR_POLL_S)
                self._wake.clear()
        except BaseException as exc:  # handed to the generator's thread, which raises it
            self.events.put(exc)
        finally:
            for item in running.values():
                _kill(item.proc)

    def _start(self, index: int) -> _Running:
        job = self.jobs[index]
        text_file = self.out_dir / f"turn_{index:04d}.txt"
        text_file.write_text(job.text, encoding="utf-8")
        err = self.out_dir / f"turn_{index:04d}.err"
        with err.open("wb") as stderr:  # a file, not a pipe: nothing to drain, no deadlock
            proc = subprocess.Popen(
                espeak_command(self.program, voice=job.voice, text_file=text_file, wav_file=self.wavs[index]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return _Running(index, proc, self.wavs[index], err, time.monotonic() + self.timeout_s)

    def _check_exit(self, item: _Running) -> None:
        if item.proc.returncode != 0 or not item.wav.exists():
            stderr = item.err.read_text(encoding="utf-8", errors="replace").strip()
            raise GenerationError(
                f"espeak-ng failed on turn {item.index + 1} (voice {self.jobs[item.index].voice!r}, "
                f"exit code {item.proc.returncode}): {stderr[:_STDERR_CHARS] or 'no error output'}"
            )

    def _check_deadlines(self, running: Iterable[_Running]) -> None:
        now = time.monotonic()
        for item in running:
            if now > item.deadline:
                raise TransientGenerationError(
                    f"espeak-ng took longer than PODFLOW_TTS_TIMEOUT={self.timeout_s:g}s "
                    f"on turn {item.index + 1}"
                )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_REAP_S)
