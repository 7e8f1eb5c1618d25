"""Object storage for checkpoints and engines: content-addressed entries with manifests."""
