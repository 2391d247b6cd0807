"""The web dashboard in a real browser (Debian's Chromium, driven by Playwright) against a live
coordinator with a real worker process.

Set DASHBOARD_SCREENSHOTS=docs/images to write the screenshots that docs/dashboard.md shows;
otherwise they go to the test's temporary folder (they are taken either way, so a page that
cannot render fails here).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright

from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_NAME,
    CoordinatorProc,
    free_port,
    start_worker,
    write_config,
)

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FAIL_KEYS = ["item-03", "item-07"]
TIMEOUT_MS = 60_000


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorProc]:
    config = write_config(
        tmp_path / "config.yaml",
        tmp_path / "data",
        dashboard={"refresh_s": 0.3, "counts_every_s": 0.3},
    )
    coord = CoordinatorProc(config, free_port(), tmp_path / "coordinator.log")
    coord.start()
    yield coord
    coord.kill()


@pytest.fixture
def browser() -> Iterator[Any]:
    assert CHROMIUM, "Debian's chromium is needed (apt-get install chromium; .ci/run does)"
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/dashboard")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    playwright.expect(page.locator("#conn")).to_have_text("live", timeout=TIMEOUT_MS)


def test_admin_sees_a_worker_arrive_follows_a_job_and_reads_a_failure(
    coordinator: CoordinatorProc, browser: Any, shots: Path, tmp_path: Path
) -> None:
    expect = playwright.expect
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    sign_in(page, coordinator.http_url, ADMIN_TOKEN)
    expect(page.locator("#workers")).to_contain_text("No worker has connected yet")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    with coordinator.admin() as admin:
        job = admin.post(
            "/api/v1/jobs",
            json={
                "task_type": "echo",
                "dataset": "browser",
                "params": {"delay_ms": 250, "fail_keys": FAIL_KEYS},
                "max_attempts": 1,
            },
        )
        job.raise_for_status()
        job_id = job.json()["job_id"]
        items = [{"item_key": f"item-{i:02d}", "input": {"text": f"text {i}"}} for i in range(24)]
        admin.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}).raise_for_status()

    worker = start_worker(
        coordinator.ws_url,
        WORKER_NAME,
        tmp_path / "worker-state",
        tmp_path / "worker.log",
        "--batch-size",
        "2",
        "--no-status-ui",
    )
    try:
        # The worker appears on the Status page without a reload, busy with an item.
        row = page.locator("#workers tr", has_text=WORKER_NAME)
        expect(row).to_be_visible(timeout=TIMEOUT_MS)
        expect(row.locator(".badge")).to_have_text("busy", timeout=TIMEOUT_MS)
        expect(page.locator("#processing tr", has_text="item-")).not_to_have_count(0)
        expect(page.locator("#queue")).to_contain_text("echo")
        assert page.evaluate("window.sameDocument") is True
        page.screenshot(path=str(shots / "dashboard-status-busy.png"), full_page=True)

        # Jobs: the job's progress bar goes to 100%.
        page.click("nav >> text=Jobs")
        job_row = page.locator("#jobs tr", has_text=job_id[:8])
        expect(job_row).to_be_visible(timeout=TIMEOUT_MS)
        expect(job_row.locator(".bar em")).to_have_text("100%", timeout=TIMEOUT_MS)
        expect(job_row).to_contain_text("22 / 24")
        page.screenshot(path=str(shots / "dashboard-jobs.png"), full_page=True)

        # The job's page: filter the failed items and open one's reason.
        job_row.locator(f"a[href='#/job/{job_id}']").click()
        expect(page.locator("#items tr")).to_have_count(24, timeout=TIMEOUT_MS)
        expect(page.locator("#items")).to_contain_text("text 5")  # a result beside its input
        page.select_option("#f-status", "failed")
        page.click("#filters button[type=submit]")
        expect(page.locator("#items tr")).to_have_count(2, timeout=TIMEOUT_MS)
        expect(page.locator("#items")).to_contain_text(FAIL_KEYS[0])
        page.locator("#items tr", has_text=FAIL_KEYS[0]).locator("text=Reason").click()
        expect(page.locator("#dialog")).to_be_visible()
        expect(page.locator("#dialog-body")).to_contain_text("listed in fail_keys")
        page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)
        page.click("#dialog-close")

        # Workers: add one by hand; its key is shown once.
        page.click("nav >> text=Workers")
        page.fill("#w-name", "lab box 2")
        page.fill("#w-priority", "5")
        page.click("#add-worker button[type=submit]")
        expect(page.locator("#shown-key")).not_to_be_empty(timeout=TIMEOUT_MS)
        expect(page.locator("#accounts")).to_contain_text("lab-box-2")
        page.screenshot(path=str(shots / "dashboard-workers.png"), full_page=True)
        shown = page.inner_text("#shown-key").strip()
        who = httpx.get(
            f"{coordinator.http_url}/api/v1/auth/verify-api-key",
            headers={"Authorization": f"Bearer {shown}"},
        )
        assert who.status_code == 200 and who.json()["roles"] == ["worker"]

        expect(page.locator("#connected")).to_contain_text(WORKER_NAME)

        # Back on Status after the job: the leaderboard credits the worker's contributor.
        page.click("nav >> text=Status")
        expect(page.locator("#leaderboard")).to_contain_text(WORKER_NAME, timeout=TIMEOUT_MS)
        expect(page.locator("#leaderboard")).to_contain_text("22")
        page.screenshot(path=str(shots / "dashboard-status.png"), full_page=True)
        assert page.evaluate("window.sameDocument") is True
        assert errors == []
    finally:
        worker.kill()
        worker.wait(timeout=30)


def test_a_user_sees_only_their_own_tasks(
    coordinator: CoordinatorProc, browser: Any, shots: Path
) -> None:
    expect = playwright.expect
    api = f"{coordinator.http_url}/api/v1"
    keys, tasks = {}, {}
    for name in ("alice", "bob"):
        made = httpx.post(
            f"{api}/auth/register", json={"username": name, "password": "a long password 123"}
        )
        assert made.status_code == 201, made.text
        keys[name] = made.json()["api_key"]
        task = httpx.post(
            f"{api}/summarization",
            data={"text": f"{name} wrote this. It is private to {name}."},
            headers={"X-API-Key": keys[name]},
        )
        assert task.status_code == 201, task.text
        tasks[name] = task.json()["task_id"]

    page = browser.new_page(viewport={"width": 1360, "height": 700})
    sign_in(page, coordinator.http_url, keys["bob"])
    expect(page.locator("#tasks")).to_contain_text(tasks["bob"], timeout=TIMEOUT_MS)
    expect(page.locator("#task-total")).to_have_text("1 task in all.")
    page.screenshot(path=str(shots / "dashboard-user-tasks.png"), full_page=True)
    assert tasks["alice"] not in page.content()
    assert "Status" not in page.inner_text("nav") and "Jobs" not in page.inner_text("nav")

    # Admin pages are not there for a user, and the live feed refuses to watch a job.
    page.goto(f"{coordinator.http_url}/dashboard#/job/{tasks['alice']}")
    expect(page.locator("main")).to_contain_text("Job pages are for admins", timeout=TIMEOUT_MS)
    answer = page.evaluate(
        """([token, job]) => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/api/v1/dashboard/live`);
            ws.onopen = () => ws.send(JSON.stringify({type: "auth", token}));
            ws.onmessage = (event) => {
              const frame = JSON.parse(event.data);
              if (frame.type === "hello") ws.send(JSON.stringify({type: "watch", job_id: job}));
              if (frame.type === "error" || frame.type === "job") { ws.close(); resolve(frame); }
            };
        })""",
        [keys["bob"], tasks["alice"]],
    )
    assert answer["type"] == "error" and "for admins" in answer["detail"]
    assert tasks["alice"] not in page.content()
