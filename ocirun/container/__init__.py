"""What happens inside a new container: namespaces, rootfs, devices, process settings."""
