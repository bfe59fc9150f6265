#!/usr/bin/env bash
# Installs what building and testing Tessera needs beyond a Rust toolchain, if it is missing:
# cmake (Pingora's zlib-ng build), curl and openssl (the TLS/HTTP2 end-to-end test).
# Debian/Ubuntu only; uses sudo when not run as root. Safe to run again.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v cc >/dev/null || missing+=(build-essential)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
