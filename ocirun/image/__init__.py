"""bundle-from-hub: turn an image reference into an OCI bundle `ocirun run` starts.

reference.py parses names, registry.py and sources.py fetch manifests and
blobs, cache.py keeps verified blobs, layers.py applies layers without ever
writing outside the rootfs, imageconfig.py turns the image config into
config.json, and cli.py ties them together.
"""
