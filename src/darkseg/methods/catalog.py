"""Every method of darkseg, registered in ``METHODS`` on import."""

from darkseg.methods import cam, dgkd_wlss, ssss
from darkseg.methods.base import METHODS

__all__ = ["METHODS"]
