"""Files, URIs, atomic stage outputs and run manifests."""
