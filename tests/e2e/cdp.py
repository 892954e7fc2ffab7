"""cdp.py - headless Chromium for the SOC page's end-to-end suites, driven over the DevTools
pipe (--remote-debugging-pipe: the browser reads commands on fd 3 and writes on fd 4, each
message JSON followed by a NUL byte). Every failure exits with a "FAIL: ..." line.

    b = cdp.Browser(chromium, tmp)       # tmp: profile and chromium.log
    b.open_page()                        # a tab, Page and Runtime enabled
    b.send("Page.navigate", {"url": url}, b.session)
    b.wait_for("document.body.dataset.loaded === 'yes'", "its first data")
    b.close()
"""
import json
import os
import subprocess
import sys
import time


class Browser:
    def __init__(self, chromium, tmp, window="1400,1000"):
        self.tmp = tmp
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def fds():
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)
            # dup2 onto the same number keeps close-on-exec: clear it explicitly
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        flags = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--user-data-dir=" + tmp + "/chromium-profile",
                 "--remote-debugging-pipe", "--window-size=" + window, "about:blank"]
        self.proc = subprocess.Popen([chromium] + flags, preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(tmp + "/chromium.log", "wb"))
        os.close(to_r)
        os.close(from_w)
        self.buf = b""
        self.next_id = 0
        self.session = None

    def _log(self):
        return open(self.tmp + "/chromium.log", errors="replace").read()[-3000:]

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            sys.exit("FAIL: chromium is gone:\n" + self._log())
        end = time.time() + timeout
        while time.time() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        sys.exit(f"FAIL: CDP {method}: {m['error']}")
                    return m["result"]
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk:
                sys.exit("FAIL: chromium closed the DevTools pipe:\n" + self._log())
            self.buf += chunk
        sys.exit(f"FAIL: CDP {method}: no answer")

    def open_page(self):
        """A new tab with Page and Runtime enabled; returns (and keeps) its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", {}, self.session)
        self.send("Runtime.enable", {}, self.session)
        return self.session

    def js(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                      self.session)
        if "exceptionDetails" in r:
            sys.exit(f"FAIL: page script error in {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=30, step=0.2):
        end = time.time() + timeout
        while time.time() < end:
            v = self.js(expr)
            if v:
                return v
            time.sleep(step)
        dom = self.js("document.body.innerText")
        sys.exit(f"FAIL: the page never showed {what}; it shows:\n{(dom or '')[:3000]}")

    def close(self):
        try:
            self.send("Browser.close", {}, None, timeout=5)
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
