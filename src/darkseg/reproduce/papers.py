"""Every paper ``darkseg reproduce`` can run, by the name the command takes."""

from __future__ import annotations

from darkseg.reproduce import asdt, ccdistill, dania, dgkd_wlss, plda
from darkseg.reproduce.tables import Paper

PAPERS: dict[str, Paper] = {p.name: p for p in (dgkd_wlss.PAPER, plda.PAPER, asdt.PAPER, dania.PAPER,
                                                       ccdistill.PAPER)}
