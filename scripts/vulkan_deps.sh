#!/bin/sh
# The Vulkan SDK and Mesa's software Vulkan device (lavapipe) for `make test-vulkan`, from Debian/Ubuntu packages
# (run as root: `make vulkan-deps` adds sudo where needed).
# Debian 12's own Mesa (22.3.6) has a lavapipe that crashes in its queue thread during Hogwild! passes, a driver
# defect: Mesa 25.0.7 runs the same build and the same tests clean (docs/backend.md, "Vulkan"). On Debian 12 the
# driver therefore comes from bookworm-backports.
set -eu
apt-get install -y --no-install-recommends libvulkan-dev glslc spirv-headers vulkan-tools
. /etc/os-release
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! apt-cache policy | grep -q bookworm-backports; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            > /etc/apt/sources.list.d/bookworm-backports.sources
        apt-get update
    fi
    apt-get install -y --no-install-recommends -t bookworm-backports mesa-vulkan-drivers
else
    apt-get install -y --no-install-recommends mesa-vulkan-drivers
fi
