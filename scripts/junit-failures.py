#!/usr/bin/env python3
"""Prints the tests a nextest JUnit report (target/nextest/default/junit.xml) records as failed,
one `binary test` per line, and exits 1 when there is any. Used by scripts/test.sh (the list at
the end of a run) and scripts/flake-hunt.sh (failures counted over runs).
Usage: junit-failures.py REPORT"""
import sys
import xml.etree.ElementTree as ET

if len(sys.argv) != 2:
    sys.exit("usage: junit-failures.py REPORT")
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError) as e:
    sys.exit(f"cannot read the JUnit report {sys.argv[1]}: {e}")
failed = []
for suite in root.iter("testsuite"):
    for case in suite.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{suite.get('name')} {case.get('name')}")
for name in failed:
    print(name)
sys.exit(1 if failed else 0)
