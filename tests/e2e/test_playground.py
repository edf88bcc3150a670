"""The web playground in a real browser: Debian's Chromium driven by Playwright against the real
service on 127.0.0.1 - upload, round trip, token grid, players, downloads, an error, narrow width."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import running_server

from dmcodec.audio import write_wav
from dmcodec.signals import speech_like

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Screenshots go to the test's temporary folder, or to DMCODEC_ARTIFACTS when set (to look at them).
ARTIFACTS = os.environ.get("DMCODEC_ARTIFACTS")
# Flags for a closed network: no background connections, no first-run or update traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                 # a fake microphone (a beep), granted without a prompt
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test.sh "
                                "installs it where it can)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_playground_round_trip_downloads_errors_and_narrow_layout(browser, tiny_checkpoint, tmp_path):
    clip = tmp_path / "hello.wav"
    write_wav(clip, speech_like(2.3, 16000, seed=5), 16000)
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 20)
    artifacts = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    artifacts.mkdir(parents=True, exist_ok=True)

    with running_server(tiny_checkpoint, tmp_path / "server.log") as (url, _):
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
        console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url + "/")
        page.wait_for_selector("#levels option", state="attached")
        assert "untrained" in page.inner_text("#model-line").lower()

        page.set_input_files("#file-input", str(clip))
        page.select_option("#levels", "6")
        page.focus("#run-button")
        page.keyboard.press("Enter")  # the form works from the keyboard
        page.wait_for_selector("#results:not([hidden])")
        page.wait_for_function("document.querySelector('#status').textContent === 'Done.'")

        # Both players, both spectrograms, the token grid with a playhead, the numbers.
        assert page.get_attribute("#original-audio", "src").startswith("blob:")
        assert page.get_attribute("#decoded-audio", "src").startswith("blob:")
        page.wait_for_function("document.querySelector('#decoded-spectrogram').width > 100")
        grid = page.eval_on_selector("#token-grid", "c => [c.width, c.height]")
        frames = -(-int(2.3 * 16000) // 320)
        assert grid == [frames * 4, 6 * 16]
        stats = page.inner_text("#stats")
        assert f"6 × {frames}" in stats and f"{6 * frames}" in stats and "1.80 kbps" in stats and " ms" in stats
        page.eval_on_selector("#decoded-audio", "a => { a.currentTime = 1.0; }")
        page.wait_for_function("document.querySelector('#token-grid').dataset.highlight === '50'")

        # Downloads hold what the API returns for the same file.
        direct = httpx.post(f"{url}/v1/encode", files={"file": ("hello.wav", clip.read_bytes(), "audio/wav")},
                            data={"n_q": "6"}).json()
        with page.expect_download() as download:
            page.click("#download-json")
        assert json.loads(Path(download.value.path()).read_text())["codes"] == direct["codes"]
        with page.expect_download() as download:
            page.click("#download-npy")
        saved = np.load(download.value.path())
        assert saved.dtype == np.uint16 and np.array_equal(saved, np.array(direct["codes"]))
        with page.expect_download() as download:
            page.click("#download-wav")
        assert Path(download.value.path()).read_bytes()[:4] == b"RIFF"
        page.screenshot(path=str(artifacts / "playground.png"), full_page=True)

        # An API error is shown as a readable message.
        page.set_input_files("#file-input", str(corrupt))
        page.click("#run-button")
        page.wait_for_selector("#error:not([hidden])")
        message = page.inner_text("#error")
        assert "400" in message and "audio" in message.lower()

        # Narrow screens stack the players.
        page.set_viewport_size({"width": 360, "height": 900})
        original = page.locator("#original-audio").bounding_box()
        decoded = page.locator("#decoded-audio").bounding_box()
        assert decoded["y"] > original["y"] + original["height"] and original["width"] <= 360
        page.screenshot(path=str(artifacts / "playground-narrow.png"), full_page=True)

        # Everything the page loaded came from the service itself.
        assert requests and all(r.startswith(url) or r.startswith("blob:") or r.startswith("data:") for r in requests)
        assert not [e for e in console_errors if "400" not in e], console_errors
        page.close()


def page_errors(log: Path) -> str:
    return "\n".join(line for line in log.read_text().splitlines() if "status=4" in line or "status=5" in line)


def test_a_microphone_recording_goes_to_the_service_as_the_browser_made_it(browser, tiny_checkpoint, tmp_path):
    """Chromium's fake microphone records WebM/Opus; the page uploads that file as is."""
    with running_server(tiny_checkpoint, tmp_path / "server.log") as (url, _):
        page = browser.new_page()
        uploads: list[str] = []
        page.on("request", lambda r: r.url.endswith("/v1/encode") and uploads.append(r.url))
        page.goto(url + "/")
        page.wait_for_selector("#levels option", state="attached")
        page.click("#record-button")
        page.wait_for_function("document.querySelector('#record-button').textContent === 'Stop recording'")
        page.wait_for_timeout(2000)
        page.click("#record-button")
        page.wait_for_function("document.querySelector('#source-name').textContent.includes('recording.')")
        chosen = page.inner_text("#source-name")
        page.click("#run-button")
        page.wait_for_function("document.querySelector('#status').textContent === 'Done.'")
        tokens_frames = page.inner_text("#stats")
        page.close()
    assert "recording.webm" in chosen and len(uploads) == 1  # Chromium records WebM/Opus; sent as is
    log = (tmp_path / "server.log").read_text()
    assert "×" in tokens_frames and "route=/v1/encode status=200" in log and page_errors(tmp_path / "server.log") == ""
