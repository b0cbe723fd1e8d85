#!/bin/sh
# bootstrap.sh - generate ./configure and the Makefile.in files.
# Installs the build tools with apt-get first if any is missing.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
set -e

cd "$(dirname "$0")"

missing=
for tool in autoreconf libtoolize pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if command -v pkg-config >/dev/null 2>&1 && ! pkg-config --exists check; then
    missing="$missing check(pkg-config)"
fi
# optional for the build, wanted by make check (C++ tests and examples)
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
# optional, wanted by make check (the event-loop examples)
if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists libuv || missing="$missing libuv1-dev"
    pkg-config --exists glib-2.0 || missing="$missing libglib2.0-dev"
    pkg-config --exists libevent || missing="$missing libevent-dev"
fi

if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=
        if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
            sudo=sudo
        fi
        echo "bootstrap: missing:$missing; installing with apt-get" >&2
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq autoconf automake libtool pkg-config check g++ \
                libuv1-dev libglib2.0-dev libevent-dev
    else
        echo "bootstrap: missing:$missing (no apt-get; install autoconf" \
             "automake libtool pkg-config check g++ libuv1-dev libglib2.0-dev" \
             "libevent-dev yourself)" >&2
    fi
fi

mkdir -p m4
autoreconf -fi
echo "bootstrap: done; now run ./configure && make"
