"""ocirun's benchmarks, side by side with runc and skopeo+umoci: `make bench`."""
