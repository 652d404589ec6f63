"""Every method of darkseg, registered in ``METHODS`` on import."""

from darkseg.methods import cam, dgkd_wlss, ssss  # noqa: F401  (registration)
from darkseg.methods import asdt  # noqa: F401  (registration)
from darkseg.methods import ccdistill  # noqa: F401  (registration)
from darkseg.methods import dania  # noqa: F401  (registration)
from darkseg.methods import seam  # noqa: F401  (registration)
from darkseg.methods import supervised  # noqa: F401  (registration)
from darkseg.methods.base import METHODS

__all__ = ["METHODS"]
