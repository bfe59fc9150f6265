#!/usr/bin/env bash
# Installs what building and testing Tessera needs beyond a Rust toolchain, if it is missing:
# cmake (Pingora's zlib-ng build), curl and openssl (the TLS/HTTP2 end-to-end test), and for the
# tile tests the real image server (iipimage-server), opj_compress (libopenjp2-tools) to make
# test JP2s, and nginx (FastCGI front for iipsrv).
# Debian/Ubuntu only; uses sudo when not run as root. Safe to run again.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v cc >/dev/null || missing+=(build-essential)
[ -x /usr/lib/iipimage-server/iipsrv.fcgi ] || missing+=(iipimage-server)
command -v opj_compress >/dev/null || missing+=(libopenjp2-tools)
command -v nginx >/dev/null || missing+=(nginx-light)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
