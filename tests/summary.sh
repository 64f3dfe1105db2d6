#!/usr/bin/env bash
# Last words of `make check`: reached only when every stage passed.
echo "check: all stages passed (build -Werror, unit+ASan/UBSan, fuzz smoke, integration, arm64 build + unit tests under qemu)"
