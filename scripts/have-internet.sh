#!/usr/bin/env bash
# Exit 0 when Docker Hub's registry answers within a few seconds.
exec timeout 5 bash -c 'exec 3<>/dev/tcp/registry-1.docker.io/443' 2>/dev/null
