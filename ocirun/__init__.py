"""ocirun: an OCI runtime in Python, written to be read.

The package mirrors the runtime spec: `lifecycle/` holds one module per
operation (create, start, state, kill, delete...), `container/` what happens
inside the new container (namespaces, rootfs, devices, process settings),
`cgroups/` the resource controllers, `image/` the bundle-from-hub tool, and
`sys/` the thin layer of system calls everything else goes through.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"
