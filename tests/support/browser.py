"""Headless Chromium for the live admin's tests: started, logged in, its socket held on demand."""

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots"

# Installed before any page script: WebSockets wait for window.offloadRelease() while
# window.offloadHold is set, so a test can land an event between a page's render and its connect.
HOLD_SOCKETS = """
(function () {
  var Real = window.WebSocket, pending = [];
  window.offloadHold = false;
  window.offloadRelease = function () { window.offloadHold = false; pending.splice(0).forEach(function (f) { f(); }); };
  function Held(url, protocols) {
    var self = this;
    this.send = function (data) { self.real.send(data); };
    this.close = function () { if (self.real) { self.real.close(); } };
    var start = function () {
      self.real = new Real(url, protocols);
      self.real.onmessage = function (e) { if (self.onmessage) { self.onmessage(e); } };
      self.real.onclose = function (e) { if (self.onclose) { self.onclose(e); } };
      self.real.onopen = function (e) { if (self.onopen) { self.onopen(e); } };
    };
    if (window.offloadHold) { pending.push(start); } else { start(); }
  }
  window.WebSocket = Held;
})();
"""


def chromium(width: int = 1280, height: int = 900):
    """A headless Chromium whose pages can hold their sockets (see HOLD_SOCKETS)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--window-size={width},{height}", "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOLD_SOCKETS})
    return driver


def log_in(driver, base_url: str, username: str, password: str, next_path: str = "/admin/") -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/admin/login/?next={next_path}")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # A click does not wait for the form's navigation: a get() that follows at once can race the
    # login POST and land on its redirect (the admin index) instead of the page asked for.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: "/admin/login/" not in d.current_url)


def screenshot(driver, name: str) -> Path:
    """Save the whole page as var/test/screenshots/<name>.png (for a person to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(width, min(max(height + 120, 600), 4000))
    driver.save_screenshot(str(path))
    return path
