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
from tastebud.messaging.inbox import Inbox
from tests.api.servers import ADMIN_TOKEN, ServeProcess
from tests.messaging.servers import smtp_server

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
    "users": {"TIER": "categorical", "AGE_GROUP": "categorical", "EMAIL": "string"},
}
TINY_SEQUENTIAL = {"recipe": "sequential", "params": {"epochs": 3, "hidden": 16, "max_len": 8,
                   "batch_size": 32, "validation_users": 16}}  # fmt: skip
MAIL = """Subject: {{ item.TITLE }}, picked for you
<p>Hello {{ user.id }}: <a href="{{ track('https://example.com/' ~ item.id) }}">watch it</a>.</p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""
MAIL_B = MAIL.replace("picked for you", "only this week")
HUMAN = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"}


@pytest.fixture(scope="module")
def smtp() -> Iterator[Inbox]:
    with smtp_server() as (_, inbox):
        yield inbox


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: Inbox) -> Iterator[ServeProcess]:
    """``tastebud serve`` (mailing the test's SMTP server) with generated items and users
    imported, interactions left for the browser to upload, solutions and campaigns declared."""
    home = tmp_path_factory.mktemp("console-home")
    files = generate(n_users=300, n_items=120, days=30, seed=1).write_csv(home / "data")
    serve = ServeProcess(home, env={"TASTEBUD_MESSAGING__SMTP_PORT": str(smtp.port),
                                    "TASTEBUD_MESSAGING__MACHINE_OPEN_SECONDS": "0"})  # fmt: skip
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
        assert api.post(f"{group}/solutions", json={"name": "next", **TINY_SEQUENTIAL}).is_success
        for name in ("home", "other"):
            campaign = {"name": name, "solution": "for-you", "config": {"minInteractions": 0}}
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


def test_a_walk_through_the_console(
    server: ServeProcess, browser: Browser, shots: Path, smtp: Inbox
) -> None:
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

    # a sequential version records its training curve: uPlot draws it beside the versions
    page.goto(f"{console}/solutions/next")
    page.click("#train")
    trained = page.locator("#version-table tbody tr .badge.active")
    expect(trained).to_have_count(1, timeout=TIMEOUT_MS)  # torch starts slowly on 2 busy cores
    expect(page.locator("#curve-chart canvas")).to_have_count(1)
    snap(page, shots, "training-curve")

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

    users = list(dict.fromkeys(line.split(",")[0] for line in
                               interactions.read_text().splitlines()[1:]))  # fmt: skip
    items = [line.split(",")[0] for line in
             (server.home / "data" / "items.csv").read_text().splitlines()[1:]]  # fmt: skip
    api = httpx.Client(base_url=f"{server.url}/v1/dataset-groups/{GROUP}", headers=ADMIN)

    # experiments: answers through an A/B test, clicks on some; the report's tables
    arms = [{"name": "control", "campaign": "home", "weight": 50},
            {"name": "treatment", "campaign": "other", "weight": 50}]  # fmt: skip
    experiment = {"name": "ab", "arms": arms, "metric": "click", "attributionWindow": "1h"}
    assert api.post("/experiments", json=experiment).status_code == 201
    assert api.post("/experiments/ab/start").is_success
    for n, who in enumerate(users[:60]):
        answer = api.post("/experiments/ab/recommendations", json={"userId": who}).json()
        if n % 3 == 0 or (answer["arm"] == "treatment" and n % 2 == 0):
            click = {"itemId": answer["itemList"][0]["itemId"], "eventType": "click",
                     "recommendationId": answer["recommendationId"]}  # fmt: skip
            assert api.post("/events", json={"userId": who, "eventList": [click]}).is_success
    page.goto(f"{console}/experiments")
    page.click("text=ab")
    lift = page.locator('#comparisons tr[data-metric="conversion_rate"] .lift')
    expect(lift).to_have_text(re.compile(r"^[+-]\d+\.\d%$"))
    expect(page.locator("#sample-ratio .srm-verdict")).to_be_visible()
    snap(page, shots, "experiment")

    # messages: preview a user's mail, send it; two readers open it, one clicks
    recipients = users[:10]
    profiles = [{"userId": u, "properties": {"EMAIL": f"{u}@example.com"}} for u in recipients]
    assert api.post("/users", json={"users": profiles}).is_success
    message = {"name": "spring", "channel": "email", "html": True, "itemId": items[0],
               "templates": {"default": MAIL, "B": MAIL_B},
               "segment": [{"userId": u} for u in recipients]}  # fmt: skip
    assert api.post("/messages", json=message).status_code == 201
    page.goto(f"{console}/messages")
    page.click("text=spring")
    page.fill("#preview-user", recipients[0])
    page.click("#preview-button")
    expect(page.locator("#draft-shown .subject")).to_have_text(
        re.compile(r"picked for you|only this week")
    )
    page.once("dialog", lambda dialog: dialog.accept())  # "Send spring to every user …?"
    page.click("#send")
    expect(page.locator("#send-result")).to_contain_text("sent 10")
    for n, mail in enumerate(smtp.messages[:2]):
        body = mail.get_body(("html",)).get_content()
        links = re.findall(r'https?://[^/"]+(/v1/track/[^"]+)', body)
        opened = next(link for link in links if "/open/" in link)
        assert httpx.get(server.url + opened, headers=HUMAN).status_code == 200
        if n == 0:
            clicked = next(link for link in links if "/click/" in link)
            httpx.get(server.url + clicked, headers=HUMAN)
    page.reload()
    expect(page.locator('tr[data-row="all"] .opens')).to_contain_text("2 ")
    expect(page.locator('tr[data-row="all"] .clicks')).to_contain_text("1 ")
    page.fill("#preview-user", recipients[1])
    page.click("#preview-button")
    shown = page.frame_locator("#draft-shown iframe.mail").locator("body")
    expect(shown).to_contain_text(f"Hello {recipients[1]}")  # the HTML mail, in its sandbox
    # the screenshot only: Chromium paints a sandboxed frame once it has been on screen
    page.locator("#draft-shown iframe.mail").scroll_into_view_if_needed()
    snap(page, shots, "message")

    # reels: a catalogue pasted, the user's reel cut from it
    catalogue = "title,clip,source,start,end\n" + "".join(
        f"{item},{clip},/media/{item}.mp4,{clip * 10},{clip * 10 + 2 + clip}\n"
        for item in items[:8] for clip in range(3)
    )  # fmt: skip
    page.goto(f"{console}/reels")
    page.fill("#reel-solution", "for-you")
    page.fill("#reel-user", user)
    page.fill("input[name=seconds]", "20")
    page.fill("#reel-clips", catalogue)
    page.click("#compose")
    expect(page.locator("#reel-titles tbody tr").first).to_be_visible()
    expect(page.locator("#reel-bar .shot").first).to_be_visible()
    snap(page, shots, "reels")
    api.close()

    # the overview shows the jobs just run
    page.goto(f"{console}/")
    expect(page.locator("#live tr.job")).to_have_count(6)  # 2 imports, upload, 3 trainings
    snap(page, shots, "overview")

    # a phone-sized screen: every page (with its answers shown), nothing wider than the screen
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state())  # type: ignore[arg-type]
    small = phone.new_page()
    small.goto(f"{console}/try?campaign=home&user={user}")
    small.click("#ask-button")
    expect(small.locator("#answer-items tbody tr")).to_have_count(10)
    fits_the_screen(small)
    snap(small, shots, "try-it-phone")
    small.goto(f"{console}/reels")
    small.fill("#reel-user", user)
    small.fill("#reel-clips", catalogue)
    small.click("#compose")
    expect(small.locator("#reel-titles tbody tr").first).to_be_visible()
    fits_the_screen(small)
    small.goto(f"{console}/messages/spring")
    small.click("#preview-button")
    expect(small.locator("#draft-shown iframe.mail")).to_be_visible()
    fits_the_screen(small)
    for path in ("", "data?user=" + user, "solutions", "solutions/for-you", "solutions/next",
                 "filters", "campaigns", "experiments", "experiments/ab", "messages"):  # fmt: skip
        small.goto(f"{console}/{path}")
        fits_the_screen(small)
    phone.close()
    context.close()


def fits_the_screen(page: Page) -> None:
    """No horizontal scrolling of the page itself (a wide table scrolls inside its card)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide on a {PHONE['width']}px screen"
