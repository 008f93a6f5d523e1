"""Issue 13, must-show 5, in a real headless Chromium against the dashboard served by waitress on
127.0.0.1: the open-redirect attack on the sign-in (item 4) ends on this site's ``/``, and sign-out
ends the session on the server (item 5): a copied session cookie sends a new browser to /login."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from browser import PASSWORD, SCREENSHOTS, chromium, served


def test_the_redirect_attack_stays_on_the_site_and_sign_out_ends_the_copied_session(tmp_path: Path) -> None:
    # A folder without a warehouse is enough: the pages say so, and sign-in is all this test needs.
    with served(tmp_path / "bank.duckdb") as base_url, chromium() as browser:
        site = urlsplit(base_url).netloc
        victim = browser.new_context(base_url=base_url)
        off_site: list[str] = []
        victim.on("request", lambda r: urlsplit(r.url).netloc != site and off_site.append(r.url))
        page = victim.new_page()
        page.goto("/login?next=/%09/evil.com")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        assert urlsplit(page.url).netloc == site and urlsplit(page.url).path == "/"
        assert not any("evil.com" in url for url in off_site)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "security-signin-redirect.png"))

        copied = [c for c in victim.cookies() if c["name"] == "session"]
        assert copied and copied[0]["httpOnly"]

        def with_copied_cookie() -> str:
            thief = browser.new_context(base_url=base_url)
            try:
                thief.add_cookies(copied)
                stolen = thief.new_page()
                stolen.goto("/risk")
                stolen.wait_for_load_state("load")
                return urlsplit(stolen.url).path
            finally:
                thief.close()

        assert with_copied_cookie() == "/risk"  # the copy works while the session lives ...
        page.goto("/logout")
        page.wait_for_url(f"{base_url}/login")
        assert with_copied_cookie() == "/login"  # ... and not once its owner has signed out
        victim.close()
