"""Open a page in a real headless browser (Debian's chromium): what its scripts see, its console, a screenshot."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

# Appended to a copy of the page under test: once it has loaded, report what a reader's browser holds
# (sections, charts, images that failed to load) and sort a table by clicking its header twice.
_CHECK = """<script>
window.addEventListener("load", () => {
  const out = {sections: [...document.querySelectorAll("section")].map(s => s.id),
               svgs: document.querySelectorAll("svg").length,
               images: document.images.length,
               broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length,
               sorted: {}};
  document.querySelectorAll("section").forEach(section => {
    const table = section.querySelector("table.sortable");
    if (!table || table.tBodies[0].rows.length < 2) return;
    const th = table.querySelectorAll("th")[1]; th.click(); th.click();
    out.sorted[section.id] = [...table.tBodies[0].rows].map(r => r.cells[1].dataset.v ?? r.cells[1].textContent);
  });
  const pre = document.createElement("pre"); pre.id = "browser-check"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    """The browser's path; missing it is a failure (`make test` installs it), never a skip."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium missing: `make test` installs it (scripts/install-system-tools --test)"
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120, check=False)


def check_page(page: Path, workdir: Path) -> tuple[dict, list[str]]:
    """Load a copy of ``page`` with the check script; return what it reported and the page's console lines."""
    copy = workdir / f"checked-{page.name}"
    copy.write_text(page.read_text().replace("</body>", _CHECK + "</body>", 1))
    res = _run(["--dump-dom", copy.as_uri()])
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the page did not finish loading in chromium: {res.stderr[-3000:]}"
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), console


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 4000) -> Path:
    """A PNG of the page as the browser draws it."""
    res = _run([f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()])
    assert png.is_file() and png.stat().st_size > 10_000, res.stderr[-3000:]
    return png


# Appended to a copy of the page under test (whose <base> is the page itself): every link as the browser resolves
# it, once the page has loaded.
_LINKS = """<script>
window.addEventListener("load", () => {
  const pre = document.createElement("pre"); pre.id = "browser-links";
  pre.textContent = JSON.stringify([...document.links].map(a => a.href)); document.body.appendChild(pre);
});
</script>"""


def rendered(page: Path, workdir: Path) -> tuple[str, list[str], list[str]]:
    """Load a copy of ``page`` as if from where it lies; return its DOM once its scripts ran, its links, its console.

    The copy (in ``workdir``) has the page itself as its ``<base>``, so relative links and ``document.baseURI``
    resolve as from the page; the links are ``document.links`` as absolute URLs.
    """
    copy = workdir / f"rendered-{page.name}"
    base = f'<base href="{page.resolve().as_uri()}">'
    text = re.sub(r"<head[^>]*>", lambda m: m.group(0) + base, page.read_text(), count=1)
    copy.write_text(text.replace("</body>", _LINKS + "</body>", 1))
    res = _run(["--dump-dom", copy.as_uri()])
    found = re.search(r'<pre id="browser-links">(.*?)</pre>', res.stdout, re.S)
    assert found, f"the page did not finish loading in chromium: {res.stderr[-3000:]}"
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res.stdout, json.loads(html.unescape(found.group(1))), console
