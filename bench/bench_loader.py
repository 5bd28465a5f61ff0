"""The runtime loader: a cached `load_key` call, and a hundred threads on a cold cache.

    python bench/bench_loader.py

Runs against the project's Key Vault server (tests/servers/azure_keyvault.py) through the real
Azure SDK, so a cold fetch is a real HTTP round trip with the SDK's challenge handshake. The
cold figure is what an application's first call pays: importing the SDK modules the provider
imports (timed in a fresh interpreter, median of 5) plus the first load_key (challenge, fetch).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from keysentry import loader
from keysentry.providers import azure
from servers.azure_keyvault import KeyVaultServer
from stores import StaticCredential, keyvault_client, loopback_session, write_config

VAULT = "https://keysentry-bench.vault.azure.net"


SDK_IMPORT = (
    "import time; started = time.perf_counter(); "
    "import azure.identity, azure.keyvault.secrets, azure.core.exceptions; "
    "print(time.perf_counter() - started)"
)


def sdk_import_seconds(runs: int = 5) -> float:
    """What importing the provider's SDK modules costs a fresh interpreter (the median)."""
    command = [sys.executable, "-c", SDK_IMPORT]
    times = []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(float(done.stdout))
    return statistics.median(times)


def main() -> None:
    sdk_import = sdk_import_seconds()
    from azure.core.pipeline.transport import RequestsTransport
    from azure.keyvault.secrets import SecretClient

    server = KeyVaultServer(VAULT).start()
    session = loopback_session(server.port)
    azure.use_client_factory(
        lambda url: SecretClient(
            url,
            StaticCredential(),
            transport=RequestsTransport(session=session, session_owner=False),
        )
    )
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        write_config(
            Path(work),
            {"production": {"OPENAI_API_KEY": "azure-kv://keysentry-bench/OPENAI_API_KEY"}},
        )
        keyvault_client(server).set_secret("OPENAI-API-KEY", "sk-bench-" + "x1y2z3" * 8)
        loader.configure(None)
        started = time.perf_counter()
        loader.load_key(env="production")
        cold = time.perf_counter() - started
        runs = 200_000
        per_call = (
            min(timeit.repeat(lambda: loader.load_key(env="production"), number=runs, repeat=5))
            / runs
        )

        loader.configure(None)
        server.requests.clear()
        server.delay = 0.2
        barrier = threading.Barrier(100)

        def worker() -> None:
            barrier.wait()
            loader.load_key(env="production")

        threads = [threading.Thread(target=worker) for _ in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fetches = server.requests["GET /secrets/OPENAI-API-KEY"]
    server.stop()
    print("| measure | value |\n|---|---|")
    print(
        f"| first load_key (cold: SDK import {sdk_import * 1000:.0f} ms + challenge and fetch "
        f"{cold * 1000:.0f} ms) | {(sdk_import + cold) * 1000:.0f} ms |"
    )
    print(f"| cached load_key, best of 5 x {runs:,} calls | {per_call * 1e6:.2f} µs |")
    print(f"| provider requests for 100 threads on a cold cache | {fetches} |")


if __name__ == "__main__":
    main()
