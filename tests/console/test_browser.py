"""The console in a real browser: Debian's Chromium driven by Playwright against a real
``tastebud serve`` on generated data. One server, one browser, one walk through the pages in the
order a newcomer would take: sign in, import, train, ask, send an event, write a filter, roll a
campaign back. Screenshots of the main pages go to a temporary folder (and, when
``TASTEBUD_CONSOLE_SCREENSHOTS`` names a folder such as ``docs/console``, there too).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tastebud.demo import generate
from tests.api.servers import ADMIN_TOKEN, ServeProcess

CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/services.sh installs it); Playwright's
# own browser download does not work on these machines
GROUP = "default"
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
TIMEOUT_MS = 30_000
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


SCHEMAS = {
    "items": {
        "TITLE": "textual",
        "GENRES": "categorical",
        "YEAR": "numerical",
        "PRICE": "numerical",
    },
    "users": {"TIER": "categorical", "AGE_GROUP": "categorical"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``tastebud serve`` with generated items and users imported, interactions left for the
    browser to upload, and a solution and campaign declared."""
    home = tmp_path_factory.mktemp("console-home")
    files = generate(n_users=300, n_items=120, days=30, seed=1).write_csv(home / "data")
    serve = ServeProcess(home)
    serve.wait_ready()
    with httpx.Client(base_url=f"{serve.url}/v1", headers=ADMIN) as api:
        group = f"/dataset-groups/{GROUP}"
        for dataset, fields in SCHEMAS.items():
            assert api.put(f"{group}/schemas/{dataset}", json={"fields": fields}).is_success
            body = {"dataset": dataset, "path": str(files[dataset]), "mode": "full"}
            started = api.post(f"{group}/import-jobs", json=body)
            assert started.status_code == 202, started.text
            wait_for_job(api, started.json()["id"])
        solution = {"name": "for-you", "recipe": "user-personalization",
                    "params": {"algorithm": "ease"}}  # fmt: skip
        assert api.post(f"{group}/solutions", json=solution).status_code == 201
        campaign = {"name": "home", "solution": "for-you", "config": {"minInteractions": 0}}
        assert api.post(f"{group}/campaigns", json=campaign).status_code == 201
    yield serve
    serve.stop()


def wait_for_job(api: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while (job := api.get(f"/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "succeeded", job


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/services.sh (apt)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("console-screenshots")
    yield folder
    copy_to = os.environ.get("TASTEBUD_CONSOLE_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy(shot, Path(copy_to) / shot.name)


def snap(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert (shots / f"{name}.png").stat().st_size > 10_000


def test_a_walk_through_the_console(server: ServeProcess, browser: Browser, shots: Path) -> None:
    context = browser.new_context(viewport=WIDE)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = f"{server.url}/console/groups/{GROUP}"

    # sign in: a wrong token is refused with the reason, the admin token opens the overview
    page.goto(f"{server.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    page.fill("input[name=token]", "tb_wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("unknown or revoked token")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#count-items")).to_have_text("120")

    # data: upload the interactions; the import's counts appear when it is done
    page.click("nav >> text=Data")
    expect(page.locator("table.schema[data-dataset=items]")).to_contain_text("TITLE")
    interactions = server.home / "data" / "interactions.csv"
    rows = len(interactions.read_text().splitlines()) - 1
    page.set_input_files("#upload input[type=file]", str(interactions))
    page.select_option("#upload select[name=dataset]", "interactions")
    page.click("#upload button")
    job = page.locator("#imports tr.job", has_text="import interactions")
    expect(job.locator(".accepted")).to_have_text(f"{rows:,}")
    expect(job.locator(".rejected")).to_have_text("0")
    user = interactions.read_text().splitlines()[1].split(",")[0]  # a user with a history
    page.fill("input[name=user]", user)
    page.click("text=Show")
    expect(page.locator("#events tbody tr").first).to_be_visible()
    snap(page, shots, "data")

    # solutions: train a version from the page and see its metrics (twice: two versions)
    page.goto(f"{console}/solutions/for-you")
    for trained in (1, 2):
        page.click("#train")
        expect(page.locator("#train")).to_be_enabled()
        expect(page.locator("#version-table tbody tr .badge.active")).to_have_count(trained)
    ndcg = page.locator("#version-table tbody tr").first.locator("td.ndcg")
    expect(ndcg).to_have_text(re.compile(r"0\.\d{4}"))
    expect(page.locator("#versions-chart canvas")).to_have_count(1)  # uPlot drew it
    snap(page, shots, "solution")

    # try it: a user's answer with titles, then an event changes it
    page.goto(f"{console}/try")
    page.fill("#user_id", user)
    page.click("#ask-button")
    rows_shown = page.locator("#answer-items tbody tr")
    expect(rows_shown).to_have_count(10)
    expect(page.locator("#source")).to_have_text("model")
    first = rows_shown.first.get_attribute("data-item")
    expect(rows_shown.first.locator(".title")).not_to_have_text(first or "")  # a title, not an id
    rows_shown.first.locator("button.act").click()
    expect(page.locator("#sent")).to_contain_text(f"{user} watch {first}")
    expect(page.locator(f'#answer-items tr[data-item="{first}"]')).to_have_count(0)
    snap(page, shots, "try-it")

    # filters: a bad expression shows the parser's message as typed; a good one validates
    page.goto(f"{console}/filters")
    page.fill("#expression", "EXCLUDE ItemID WHERE Items.GENRES IN")
    expect(page.locator("#filter-check .error")).to_contain_text("FilterSyntaxError")
    page.fill("#expression", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')
    expect(page.locator("#filter-ok")).to_contain_text("valid")
    page.fill("#filter-name", "unwatched")
    page.click("#save-filter")
    expect(page.locator('tr[data-filter="unwatched"]')).to_be_visible()
    snap(page, shots, "filters")

    # campaigns: switch to the older version, then roll back to the newest; the answers asked
    # over HTTP meanwhile show in the cache hit rate and latency (read from /metrics)
    asked = f"{server.url}/v1/dataset-groups/{GROUP}/campaigns/home/recommendations"
    for _ in range(2):
        answered = httpx.post(asked, json={"userId": user}, headers=ADMIN)
        assert answered.status_code == 200, answered.text
    page.goto(f"{console}/campaigns")
    row = page.locator('tr[data-campaign="home"]')
    older = row.locator("select option").last.get_attribute("value")
    row.locator("select").select_option(older)
    row.locator("button.switch").click()
    expect(page.locator("#campaign-done")).to_have_text(f"home now deploys {older}")
    page.locator('tr[data-campaign="home"] button.rollback').click()
    expect(page.locator("#campaign-done")).to_have_text("home rolled back to latest")
    expect(page.locator('tr[data-campaign="home"] .deployed')).to_have_text("latest")
    expect(page.locator("#latency")).to_contain_text("/recommendations")
    expect(page.locator("#hit-rate")).not_to_have_text("—")
    snap(page, shots, "campaigns")

    # every other page opens; the overview shows the jobs just run
    page.goto(f"{console}/experiments")
    expect(page.locator("h1")).to_have_text("Experiments")
    page.goto(f"{console}/")
    expect(page.locator("#live tr.job")).to_have_count(5)  # 2 imports, upload, 2 trainings
    snap(page, shots, "overview")

    # a phone-sized screen: the same page, nothing wider than the screen
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state())  # type: ignore[arg-type]
    small = phone.new_page()
    small.goto(f"{console}/try?campaign=home&user={user}")
    small.click("#ask-button")
    expect(small.locator("#answer-items tbody tr")).to_have_count(10)
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px screen"
    snap(small, shots, "try-it-phone")
    phone.close()
    context.close()
