import subprocess
import sys

from birnn.cli import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "hmm" in capsys.readouterr().out


def test_unknown_option_is_one_line_exit_2(capsys):
    assert main(["hmm", "casino", "--no-such-option"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birnn: error:")


def test_console_script_runs_as_module():
    done = subprocess.run([sys.executable, "-m", "birnn.cli", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Usage" in done.stdout
