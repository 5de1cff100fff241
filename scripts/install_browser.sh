#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver (packages `chromium`, `chromium-driver`), which the page test of
# `polyskill serve` drives through selenium. It never fails: where they cannot be installed (not root, no apt-get,
# no network) it says why and exits 0, and the page test is then skipped with the reason.
#
#   scripts/install_browser.sh
set -u

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium && have chromedriver; then
  echo "install_browser: chromium and chromedriver are already installed ($(chromium --version 2>/dev/null | head -n 1))"
  exit 0
fi
if ! have apt-get; then
  echo "install_browser: no apt-get here; install Chromium and its chromedriver yourself (the page test is skipped)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_browser: not root; run 'sudo apt-get install chromium chromium-driver' (the page test is skipped)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }
if ! install; then
  echo "install_browser: updating the package lists"
  apt-get update -q >/dev/null || true
  if ! install; then
    echo "install_browser: apt-get could not install chromium and chromium-driver (the page test is skipped)"
    exit 0
  fi
fi
echo "install_browser: installed $(chromium --version 2>/dev/null | head -n 1) and its chromedriver"
