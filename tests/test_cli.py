import subprocess
import sys

from deepmd_like import units
from deepmd_like.cli import main


def test_help_lists_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    assert "COMMAND" in out


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "deepmd_like", "--version"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert result.stdout.strip()


def test_unit_factors_match_definitions():
    # 1 kcal/mol = 4.184 kJ/mol = 0.0433641 eV (CODATA via ASE).
    assert abs(units.energy_factor("kcal/mol") - 0.0433641) < 1e-6
    assert abs(units.force_factor("kcal/mol/Å") - 0.0433641) < 1e-6
    assert abs(units.force_factor("Hartree/Bohr") - 51.42208) < 1e-4
    assert abs(units.stress_factor("GPa") * 160.21766 - 1.0) < 1e-6
    assert units.length_factor("nm") == 10.0


def test_output_into_a_closed_pipe_is_not_an_error(repo_root):
    # `dpl data info FILE | head`: the reader leaves early; dpl exits quietly.
    water = repo_root / "datasets" / "water.h5"
    result = subprocess.run(
        f"{sys.executable} -m deepmd_like data info {water} | head -c 1 >/dev/null;"
        " exit ${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", capture_output=True, text=True,
    )
    assert "Traceback" not in result.stderr
    assert result.returncode == 0
