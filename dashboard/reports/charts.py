"""Plotly figures to PNG with kaleido, one headless Chromium for a whole report.

Starting the browser costs about 2.5 s and a figure about 0.25 s once it runs, so a report starts
the browser first, gathers its data while it boots, and renders every chart in it. The dashboard
keeps one renderer for the life of the server (:func:`shared`), so only its first export waits.

Why not ``kaleido.start_sync_server()``: its worker thread dies when the browser cannot start, and
every later call then waits forever on the dead thread's queue. This renderer runs the same kaleido
browser on an event loop of its own thread, with a time limit on each step, so a missing or broken
Chromium becomes one sentence for the user instead of a hung request.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from . import ReportError

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Seconds to wait for Chromium to start, and for one chart.
START_TIMEOUT = 60
RENDER_TIMEOUT = 60


class ChartRenderer:
    """A kaleido browser started at construction (in the background) and kept until :meth:`close`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="segrisk-charts", daemon=True)
        self._thread.start()
        self._browser: Future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        self.closed = False
        self.broken = False

    @staticmethod
    async def _open():  # noqa: ANN205 - kaleido.Kaleido, imported here so `segrisk --help` stays fast
        import kaleido

        # No MathJax: the charts have no formulas, and fetching it from its CDN would wait on the network.
        browser = kaleido.Kaleido(n=1, mathjax=False)
        await browser.__aenter__()
        return browser

    def png(self, figure: go.Figure | dict, width: int = 900, height: int = 450, scale: float = 2) -> bytes:
        """The figure as a PNG of ``width`` x ``height`` CSS pixels at ``scale`` (2: sharp on paper)."""
        if self.closed:
            raise RuntimeError("the chart renderer is closed")
        try:
            browser = self._browser.result(timeout=START_TIMEOUT)
        except FutureTimeout as exc:
            raise ReportError(f"Chromium did not start within {START_TIMEOUT} s to draw the report's charts.") from exc
        except Exception as exc:
            raise ReportError(
                "The report's charts need Chromium (Debian package `chromium`), which kaleido could not start: "
                f"{_sentence(exc)}."
            ) from exc
        options = {"format": "png", "width": width, "height": height, "scale": scale}
        job = asyncio.run_coroutine_threadsafe(browser.calc_fig(figure, opts=options), self._loop)
        try:
            return job.result(timeout=RENDER_TIMEOUT)
        except FutureTimeout as exc:
            job.cancel()
            raise ReportError(
                f"A chart took longer than {RENDER_TIMEOUT} s to draw; the report was not written."
            ) from exc
        except Exception as exc:
            self.broken = True  # a crashed browser: the dashboard starts a new one for the next export
            raise ReportError(f"A chart of the report could not be drawn: {_sentence(exc)}.") from exc

    def is_alive(self) -> bool:
        if self.closed or self.broken or not self._thread.is_alive():
            return False
        return not (self._browser.done() and self._browser.exception() is not None)

    def close(self) -> None:
        """Close the browser and stop the thread (waits for a browser still starting)."""
        if self.closed:
            return
        self.closed = True
        try:
            browser = self._browser.result(timeout=START_TIMEOUT)
            asyncio.run_coroutine_threadsafe(browser.__aexit__(None, None, None), self._loop).result(timeout=30)
        except Exception:  # noqa: BLE001 - a browser that never started or already died has nothing to close
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ChartRenderer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _sentence(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


_SHARED: ChartRenderer | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> ChartRenderer:
    """The renderer of this process, kept warm between reports (the dashboard's); a new one when the
    previous browser died."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED.is_alive():
            if _SHARED is not None:
                _SHARED.close()
            _SHARED = ChartRenderer()
            atexit.register(_SHARED.close)
        return _SHARED
