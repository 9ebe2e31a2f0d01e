"""Export to device formats: Core ML ML programs of single temporal ops and of whole VideoUNets."""

from nas.export.package import export_coreml

__all__ = ["export_coreml"]
