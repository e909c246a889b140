"""Faults against the command line: kill -9 at random moments of a training (inside checkpoint writes
too), SIGINT and SIGTERM, a disk that fills up, a second training on the same run, Ctrl-C at start-up.

The killed trainings run in a subprocess whose checkpoint writer announces every step ("op N …")
before taking it, so that the test can kill it just before, during or just after any one of them.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from safetensors.torch import load_file

from birnn.cli import main
from birnn.train import checkpoint as ckpt
from train_helpers import tagged_sentences, write_conll

EPOCHS = 8

DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from birnn.train import checkpoint
    count, pause_at = [0], int(os.environ.get("PAUSE_AT", "0"))
    pause_save = int(os.environ.get("PAUSE_SAVE", "0"))
    def announced(function):
        def wrapper(*args, **kwargs):
            count[0] += 1
            print("op", count[0], function.__name__, flush=True)
            time.sleep(30 if count[0] == pause_at else 0.003)
            return function(*args, **kwargs)
        return wrapper
    for name in ("_write", "_fsync_directory", "_point", "_collect", "write_atomic"):
        setattr(checkpoint, name, announced(getattr(checkpoint, name)))
    save = checkpoint.save
    def announced_save(directory, model, state, optimizer=None):
        print("save", state["epoch"], os.path.basename(directory), flush=True)
        if state["epoch"] == pause_save:
            global pause_at
            pause_at = count[0] + 1  # the first step of this save waits
        save(directory, model, state, optimizer)
    checkpoint.save = announced_save
    from birnn.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _restore_sigint() -> None:  # a shell's background job ignores SIGINT, and so would its children
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _data(tmp_path):
    sentences = tagged_sentences(60, seed=3)
    write_conll(tmp_path / "train.conll", sentences[:48])
    write_conll(tmp_path / "dev.conll", sentences[48:])
    return tmp_path / "train.conll", tmp_path / "dev.conll"


def _arguments(train, dev, run):
    """A tiny tagger's training; --resume once the run holds a checkpoint."""
    resume = ["--resume"] if ckpt.exists(run / "checkpoint") else []
    return ["train", "tag", "--train", str(train), "--dev", str(dev), "--out", str(run), "--epochs", str(EPOCHS),
            "--hidden", "4", "--embedding", "4", "--chars", "none", "--batch-size", "8", "--quiet", *resume]


def _start(arguments, pause_at=0, pause_save=0):
    environment = dict(os.environ, OMP_NUM_THREADS="1", PAUSE_AT=str(pause_at), PAUSE_SAVE=str(pause_save))
    return subprocess.Popen([sys.executable, "-c", DRIVER, *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment, preexec_fn=_restore_sigint)


def _read_until(process, wanted, deadline=240):
    """Lines of the driver up to the first for which ``wanted(line)`` holds (or its end)."""
    lines, stop = [], time.time() + deadline
    for line in process.stdout:
        lines.append(line.strip())
        if wanted(lines[-1]) or time.time() > stop:
            break
    return lines


def _epoch(run):
    return ckpt.read_state(run / "checkpoint")["epoch"] if ckpt.exists(run / "checkpoint") else 0


def _evaluates(run, dev, capsys):
    """evaluate on a killed run: the metrics, or (no checkpoint yet) one clear line; never a traceback."""
    code = main(["evaluate", str(run), "--data", str(dev)])
    out, err = capsys.readouterr()
    if ckpt.exists(run / "checkpoint"):
        assert code == 0 and out.startswith("accuracy "), err
    else:
        assert code == 2 and err.count("\n") == 1 and err.startswith("birnn: error:"), err


@pytest.mark.parametrize("kills", [20, pytest.param(60, marks=pytest.mark.slow)])
def test_kill_minus_nine_at_random_moments_always_resumes_or_evaluates(kills, tmp_path, capsys):
    train, dev = _data(tmp_path)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    run, seen, done = tmp_path / "killed", 0, 0
    while done < kills:
        target, extra = rng.randint(1, 9 * EPOCHS), rng.uniform(0, 0.004)
        process = _start(_arguments(train, dev, run))
        lines = _read_until(process, lambda line, t=target: line.startswith(f"op {t} "))
        time.sleep(extra)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        note = f"seed {seed}, kill {done + 1}: at {lines[-1] if lines else 'start'!r} + {extra:.4f} s"
        epoch = _epoch(run)  # CheckpointError on any damage
        assert epoch >= seen, f"{note}: the checkpoint went back from epoch {seen} to {epoch}"
        _evaluates(run, dev, capsys)
        seen, done = epoch, done + 1
        if epoch == EPOCHS:  # the run ended: kill the next one from scratch
            run, seen = tmp_path / f"killed-{done}", 0
    finished = _start(_arguments(train, dev, run))
    assert finished.wait(timeout=600) == 0, finished.stderr.read()[-2000:]
    assert _epoch(run) == EPOCHS
    if kills > 2:  # resumed after kills, the weights are those of a run never interrupted
        straight = _start(_arguments(train, dev, tmp_path / "straight"))
        assert straight.wait(timeout=600) == 0
        resumed, expected = (load_file(ckpt.resolve(r / "checkpoint") / "model.safetensors")
                             for r in (run, tmp_path / "straight"))
        assert all((resumed[name] == value).all() for name, value in expected.items()), f"seed {seed}"


@pytest.mark.parametrize(("number", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_a_signal_inside_a_save_finishes_it_then_stops_in_one_line(number, code, word, tmp_path, capsys):
    train, dev = _data(tmp_path)
    run = tmp_path / "run"
    process = _start(_arguments(train, dev, run), pause_save=2)
    try:
        lines = _read_until(process, lambda line: line.startswith("save 2 checkpoint"))
        assert lines[-1] == "save 2 checkpoint", lines
        _read_until(process, lambda line: line.startswith("op "))  # paused in the first step of the save
        os.kill(process.pid, number)
        assert process.wait(timeout=120) == code
    finally:
        process.kill()
    err = process.stderr.read().splitlines()
    assert err == [f"birnn: {word}: training stopped; {run}/checkpoint holds epoch 2 of {EPOCHS} "
                   "(continue with resume, --resume)"]
    assert _epoch(run) == 2  # the save that the signal interrupted was finished
    assert main(_arguments(train, dev, run)) == 0
    assert _epoch(run) == EPOCHS


def test_a_second_training_on_a_run_in_use_is_refused(tmp_path, capsys):
    train, dev = _data(tmp_path)
    run = tmp_path / "run"
    process = _start(_arguments(train, dev, run), pause_at=3)  # holds the run, paused in its first save
    try:
        assert _read_until(process, lambda line: line.startswith("op 3 "))[-1].startswith("op 3 ")
        assert main(_arguments(train, dev, run)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by another training (pid {process.pid} on " in err, err
    finally:
        process.kill()
        process.wait()
    assert main(_arguments(train, dev, run)) == 0  # the lock died with its holder


@pytest.mark.parametrize("failing", ["model.safetensors", "state.json", "metrics.csv"])
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(failing, tmp_path, capsys, monkeypatch):
    train, dev = _data(tmp_path)
    run = tmp_path / "run"
    write = ckpt._write

    saved_before_failing = 2 if failing == "metrics.csv" else 1  # epoch 2 fails: its checkpoint or its logs

    def full_after_epoch_one(path, data):
        in_checkpoint = failing == "metrics.csv" or path.parent.name.startswith("checkpoint-")  # not best-*
        if path.name.startswith(failing) and in_checkpoint and _epoch(run) == saved_before_failing:
            with open(path, "wb") as handle:  # a part of the file reaches the disk, then it is full
                handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, data)

    monkeypatch.setattr(ckpt, "_write", full_after_epoch_one)
    assert main(_arguments(train, dev, run)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("birnn: error: [Errno 28] ") and "No space left" in err, err
    if failing == "metrics.csv":  # the checkpoint of epoch 2 was written before the logs
        assert f"{run}/metrics.csv: not written" in err and _epoch(run) == 2
    else:
        assert f"{run}/checkpoint still holds the previous one" in err and _epoch(run) == 1
        assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-000001"]  # no half version
    assert not list(run.glob("*.tmp-*"))
    monkeypatch.setattr(ckpt, "_write", write)
    _evaluates(run, dev, capsys)
    assert main(_arguments(train, dev, run)) == 0 and _epoch(run) == EPOCHS


def _start_up_seconds() -> float:
    """The longest of three runs of ``python -c pass``: a signal before the interpreter has started
    (site included) reaches no Python code of birnn, and ends the process by the signal."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return max(times)


@pytest.mark.parametrize("launcher", ["python -m birnn.cli", "console script"])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, launcher):
    """SIGINT from 50 ms after the interpreter's own start-up on: while birnn.cli, click and torch are
    imported, while the data is read, in the first epochs; always exit 130 and one line."""
    train, _ = _data(tmp_path)
    command = [sys.executable, "-m", "birnn.cli"]
    if launcher == "console script":
        command = [os.path.join(os.path.dirname(sys.executable), "birnn")]
        if not os.path.exists(command[0]):
            pytest.skip(f"no console script beside {sys.executable} (the package is not installed)")
    start_up = _start_up_seconds()
    for delay in (0.05, 0.1, 0.2, 0.3, 0.6, 1.2, 2.5):
        process = subprocess.Popen(
            [*command, "train", "tag", "--train", str(train), "--out", str(tmp_path / f"run-{delay}"),
             "--epochs", "1000", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_restore_sigint,
        )
        time.sleep(start_up + delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 130, (delay, err)
        assert len(err.splitlines()) == 1 and err.startswith("birnn: interrupted"), (delay, err)


def test_importing_the_command_line_loads_only_the_standard_library():
    probe = "import sys; import birnn.cli; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not loaded & {"click", "torch", "numpy", "typing", "threading", "signal"}, loaded


@pytest.mark.parametrize(("number", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                      (signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_the_commands_are_imported_is_held_until_they_are(number, code, word, monkeypatch, capsys):
    from birnn.cli import commands

    finished = []

    def load(arguments):  # torch's C++ start-up aborts the process if an exception is raised inside it
        os.kill(os.getpid(), number)
        time.sleep(0.05)  # the handler runs at the next bytecode: held, not raised here
        finished.append(arguments)

    monkeypatch.setattr(commands, "load", load)
    # pytest-xdist's workers ignore SIGINT; a terminal's foreground process has Python's default handler
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        assert main(["--help"]) == code
        assert finished == [["--help"]]
        assert capsys.readouterr().err == f"birnn: {word}\n"
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGINT, outer)


def test_an_ignored_sigint_stays_ignored_while_the_commands_are_imported(monkeypatch, capsys):
    from birnn.cli import commands

    seen = []
    monkeypatch.setattr(commands, "load", lambda arguments: seen.append(signal.getsignal(signal.SIGINT)))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a shell's background job
    try:
        assert main(["--help"]) == 0
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_out_of_a_string_exec_still_exits_130_under_python_m(tmp_path):
    """CPython ends a ``python -m`` process by SIGINT when a KeyboardInterrupt left an ``exec`` of a string
    (dataclasses are made so, as torch imports lazily), although main caught it and returned 130."""
    (tmp_path / "interrupted_in_exec.py").write_text(textwrap.dedent(
        """
        import sys
        from birnn.cli import commands, main
        commands.load = lambda arguments: exec("raise KeyboardInterrupt", {})
        sys.exit(main(["--help"]))
        """
    ))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], capture_output=True, text=True, check=False,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=path))
    assert (done.returncode, done.stderr) == (130, "birnn: interrupted\n")


def _size_data(tmp_path):
    train, _ = _data(tmp_path)
    text = tmp_path / "text.txt"
    text.write_text("the time traveller was expounding a recondite matter to us\n" * 20)
    labelled = tmp_path / "labelled.tsv"
    labelled.write_text("".join(f"{i % 2}\tsentence number {i} is {'good' if i % 2 else 'bad'}\n" for i in range(40)))
    return {"tag": ["--train", str(train)], "classify": ["--train", str(labelled)], "lm": ["--data", str(text)],
            "cloze": ["--data", str(text)], "bilm": ["--text", str(text)]}


@pytest.mark.parametrize("command", ["tag", "classify", "lm", "cloze", "bilm"])
@pytest.mark.parametrize(("option", "value", "named"), [("--hidden", "1000000", "hidden=1,000,000"),
                                                        ("--embedding", "1000000", "embedding=1,000,000")])
def test_a_model_too_large_for_memory_is_one_line_before_allocating(command, option, value, named, tmp_path,
                                                                    monkeypatch, capsys):
    """64 MiB "available": the sizes are refused from their parameter count (counted on the meta device),
    naming the option, before the model is built (were it built, --hidden 10^6 could not be allocated at all
    and --embedding 10^6 would take a few hundred MiB: nothing here can exhaust the machine)."""
    from birnn import spec

    monkeypatch.setattr(spec, "available_memory", lambda: 64 * 2**20)
    run = tmp_path / "run"
    arguments = ["train", command, *_size_data(tmp_path)[command], "--out", str(run), "--epochs", "1", option, value]
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("birnn: error: a model with ") and named in err, err
    assert "parameters; weights, gradients and Adam's two moments) needs " in err and "64.0 MiB is available" in err
    assert not (run / "checkpoint").exists()


def test_model_memory_counts_training_copies_of_the_trained_weights_and_one_copy_when_loading():
    from birnn.tasks.encoders import TRAINING_COPIES, check_model_memory, rebuilding
    from birnn.tasks.tagger import Tagger, TaggerConfig

    config = TaggerConfig(embedding=8, hidden=4)
    weights = sum(p.numel() * 4 for p in Tagger(config, 50, 1, 3).parameters())
    assert check_model_memory(lambda: Tagger(config, 50, 1, 3), config) == TRAINING_COPIES * weights
    with rebuilding():
        assert check_model_memory(lambda: Tagger(config, 50, 1, 3), config) == weights
    with pytest.raises(ValueError, match=r"a model with embedding=8, hidden=4, layers=1, char_embedding=30, "
                                         r"char_hidden=50 \(.* parameters; its weights\) needs .*; 1 B is available"):
        with rebuilding():
            check_model_memory(lambda: Tagger(config, 50, 1, 3), config, available=1)


def test_the_memory_check_leaves_initialisation_alone_and_imports_no_compiler():
    """On the meta device torch would run an embedding's normal_ through its compiler stack (seconds
    of imports on every load); the check skips initialisation, and the real build still initialises."""
    script = (
        "import sys, torch\n"
        "from birnn.tasks.encoders import check_model_memory\n"
        "from birnn.tasks.tagger import Tagger, TaggerConfig\n"
        "config = TaggerConfig(embedding=8, hidden=4)\n"
        "assert check_model_memory(lambda: Tagger(config, 50, 1, 3), config) > 0\n"
        "print('torch._dynamo' in sys.modules, float(Tagger(config, 50, 1, 3).embedding.weight.std()) > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
