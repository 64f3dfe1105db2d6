#!/usr/bin/env bash
# `make demo`: placeholder until the demo lands. It will run the whole agent on a
# local broker and engine and print a summary; today it only says so.
echo "demo: not available yet - the end-to-end demo arrives with a later release."
echo "demo: run 'make check' to build berth and run every test."
