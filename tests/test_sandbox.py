"""The service's riskiest sandbox rules, applied by the kernel to a real agent run.

There is no systemd as PID 1 here, so the unit itself cannot be started. What can be checked is
the rule behind a directive, with the same kernel mechanism:

- ``MemoryDenyWriteExecute=yes``: the kernel's ``PR_SET_MDWE`` (``PR_MDWE_REFUSE_EXEC_GAIN``)
  refuses writable+executable mappings and making memory executable later, which is what
  systemd enforces (seccomp on older releases, this prctl on newer ones). A JIT would break here;
  the agent (CPython, numpy, onnxruntime with fp32 and int8 members, paho) must not.
- ``NoNewPrivileges=yes``: ``PR_SET_NO_NEW_PRIVS``.
- ``ProcSubset=pid`` (not in the unit: see its comment) hides /proc/stat and friends; the agent
  must still run, with the monitor reporting those sources absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.agent.helpers import RECORDINGS, ROOT

RUN_UNDER_MDWE = textwrap.dedent(
    """
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 38, 65, 1
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(90)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(91)  # kernel older than 6.3: no PR_SET_MDWE
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit(92)  # the rule is not in force
    except OSError:
        pass
    sys.argv = ["har-agent", *sys.argv[1:]]
    from agent.entry import main
    main()
    """
)


def _replay_args(*extra: str) -> list[str]:
    return ["replay", str(RECORDINGS[0]), "--fast", "--no-mqtt", *extra]


def _predictions(stdout: str) -> list[dict[str, object]]:
    return [
        json.loads(line.split(" ", 1)[1])
        for line in stdout.splitlines()
        if line.startswith("har/demo/prediction ")
    ]


@pytest.mark.parametrize(
    "extra",
    [
        ("--model", "wc-w1.00-r064"),  # fp32
        ("--model", "q8-cnn1d-base"),  # int8 (QDQ kernels)
        ("--policy", "adaptive"),  # every session of the front, the monitor, the policy
    ],
)
def test_agent_runs_under_memory_deny_write_execute(extra: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_UNDER_MDWE, *_replay_args(*extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode == 91:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    preds = _predictions(proc.stdout)
    assert len(preds) > 200
    if extra[0] == "--model":
        assert {p["model"] for p in preds} == {extra[1]}


def test_agent_runs_with_proc_hidden() -> None:
    """/proc mounted with subset=pid in a private mount namespace (needs CAP_SYS_ADMIN)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    probe = subprocess.run(
        [unshare, "-m", "--propagation", "private", "true"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace here")
    cmd = " ".join(
        [
            "mount -t proc -o subset=pid,hidepid=invisible proc /proc &&",
            "test ! -e /proc/stat &&",
            f"exec {sys.executable} -m agent.cli",
            *_replay_args("--policy", "adaptive"),
        ]
    )
    proc = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c", cmd],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(_predictions(proc.stdout)) > 200
    assert "system CPU use is not available" in proc.stderr
    metrics = [
        json.loads(line.split(" ", 1)[1])
        for line in proc.stdout.splitlines()
        if line.startswith("har/demo/metrics ")
    ]
    assert metrics and metrics[0]["resources"]["cpu_percent"] is None
