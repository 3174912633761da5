"""Take the README's screenshot of the portal overview from real traffic.

Starts a throwaway LEO (SQLite in a temporary directory, the fake upstream), sends a small workload
through the official openai SDK (repeated questions, paraphrases, look-alikes, one-off questions,
two keys, tags), signs the tenant's owner in with headless Chromium and saves the overview as
docs/img/overview.png. Every figure on the picture is what that ledger holds.

    .venv/bin/python scripts/screenshot_overview.py
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "overview.png"
EMAIL, PASSWORD = "owner@acme.example", "screenshot-" + os.urandom(6).hex()
QUESTIONS = [
    ("What is the capital city of Australia?", "Which city is the capital of Australia?"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("What are the health benefits of drinking green tea?", "What health benefits does drinking green tea have?"),
    ("How do I enable strict mode in TypeScript?", "How do I disable strict mode in TypeScript?"),
    ("How long should I boil an egg for a soft yolk?", "How long should I boil an egg for a hard yolk?"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def wait(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="leo-shot-"))
    upstream_port, port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "REDIS_URL": "",
           "LEO_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1", "LEO_UPSTREAM_API_KEY": "",
           "EMAIL_FILE_PATH": str(tmp / "mail"), "HF_HUB_OFFLINE": "1",
           "LEO_BASE_URL": f"http://127.0.0.1:{port}"}
    manage(env, "migrate", "--noinput", "-v", "0")
    keys = [manage(env, "demo", "--quiet").splitlines()[-1]]  # the demo tenant: no plan limits
    keys.append(manage(env, "create_api_key", "demo", "--name", "support").splitlines()[-1])
    manage(env, "shell", "-c", (
        "from allauth.account.models import EmailAddress; from tenants.models import *; "
        f"u = User.objects.create_user({EMAIL!r}, {PASSWORD!r}); "
        f"EmailAddress.objects.create(user=u, email={EMAIL!r}, primary=True, verified=True); "
        f"Membership.objects.create(user=u, tenant=Tenant.objects.get(slug='demo'), role='owner')"))
    procs = [subprocess.Popen([sys.executable, "manage.py", "fake_upstream", "--port", str(upstream_port),
                               "--latency-ms", "120"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL),
             subprocess.Popen([sys.executable, "-m", "uvicorn", "leo_optima.asgi:application", "--port", str(port),
                               "--no-access-log"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        wait(f"http://127.0.0.1:{upstream_port}/_stats")
        wait(f"http://127.0.0.1:{port}/healthz")
        rng = random.Random(7)
        clients = [openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=k, max_retries=0) for k in keys]
        for i in range(90):
            pair = QUESTIONS[min(int(rng.paretovariate(1.2)) - 1, len(QUESTIONS) - 1)]
            text = pair[0] if rng.random() < 0.6 else pair[1]
            if rng.random() < 0.2:
                text = f"Give me one fact about the number {rng.randint(1, 10_000)}."
            client = clients[i % 2]
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}],
                                           user=f"user-{i % 5}",
                                           extra_headers={"X-LEO-Tags": f"team={'search' if i % 2 else 'support'}"})
            time.sleep(0.05)
        time.sleep(1.0)  # the ledger is written behind
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/accounts/login/")
            page.fill("input[name=login]", EMAIL)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/portal/**")
            page.goto(f"http://127.0.0.1:{port}/portal/?period=24h")
            OUT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
        print(f"wrote {OUT.relative_to(ROOT)}")
    finally:
        for proc in procs:
            proc.terminate()


if __name__ == "__main__":
    main()
