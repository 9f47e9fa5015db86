"""The suite's own machinery for parallel runs: the default workers and reserved ports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import parallel
from tests.servers import _reserve, free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("args", "decides"), [
    ([], False),
    (["tests/engine", "-q", "-x"], False),
    (["-n", "3"], True),
    (["-n3"], True),
    (["--numprocesses=2"], True),
    (["-p", "no:xdist"], True),
    (["--pdb"], True),
    (["--dist", "load"], True),
])
def test_the_default_is_added_only_when_the_command_line_says_nothing(
        args: list[str], decides: bool) -> None:
    assert parallel._user_decides(args) is decides


def test_a_port_held_by_another_process_is_never_handed_out_here() -> None:
    """A port reserved by a live process (another worker) is refused; freed when it exits."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from tests.servers import free_port
            print(free_port(), flush=True)
            sys.stdin.read()  # hold the reservation until told to exit
        """)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        assert not _reserve(port)
    finally:
        holder.communicate("", timeout=30)
    assert _reserve(port)  # the kernel dropped the holder's lock with the process


def test_free_port_never_hands_out_a_port_twice_and_reserves_bus_ports() -> None:
    ports = [free_port() for _ in range(20)]
    cluster = [free_port(bus_offset=10000) for _ in range(6)]
    taken = [*ports, *cluster, *(port + 10000 for port in cluster)]
    assert len(set(taken)) == len(taken)
    assert all(port + 10000 <= 65535 for port in cluster)
    assert not any(_reserve(port) for port in taken)  # all held by this process already


def test_python_m_pytest_runs_in_parallel_by_default(tmp_path: Path) -> None:
    """The README's command with this plugin: workers without any option."""
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    env = {**os.environ, parallel.ENV_WORKERS: "2", "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)  # this test may itself run in a worker
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.parallel",
                             "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "2 workers [1 item]" in result.stdout


def test_cpu_heavy_tests_never_overlap_in_a_parallel_run(tmp_path: Path) -> None:
    """Two cpu_heavy tests on two workers: one starts after the other has ended."""
    log = tmp_path / "spans.txt"
    (tmp_path / "test_heavy.py").write_text(textwrap.dedent(f"""
        import time
        import pytest

        @pytest.mark.parametrize("name", ["a", "b"])
        def test_heavy(name):
            start = time.monotonic()
            time.sleep(1.0)
            with open({str(log)!r}, "a") as out:
                out.write(f"{{start}} {{time.monotonic()}}\\n")
    """))
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.cpu_heavy)

        def pytest_configure(config):
            config.addinivalue_line("markers", "cpu_heavy: test")
    """))
    env = {**os.environ, parallel.ENV_WORKERS: "2", "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.parallel",
                             "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    (first_start, first_end), (second_start, _) = sorted(
        tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert "2 workers [2 items]" in result.stdout
    assert second_start >= first_end > first_start


def test_cpu_heavy_tests_are_collected_first_in_their_order(tmp_path: Path) -> None:
    """The one-at-a-time chain starts at once (tests/parallel.py); the rest keep their order."""
    (tmp_path / "test_order.py").write_text(textwrap.dedent("""
        import pytest

        def test_a(): pass

        @pytest.mark.cpu_heavy
        def test_b(): pass

        def test_c(): pass

        @pytest.mark.cpu_heavy
        def test_d(): pass
    """))
    (tmp_path / "conftest.py").write_text(
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'cpu_heavy: test')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.parallel",
                             "-p", "no:cacheprovider", "--collect-only", "-q", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    names = [line.rsplit("::", 1)[1] for line in result.stdout.splitlines() if "::" in line]
    assert names == ["test_b", "test_d", "test_a", "test_c"]
