"""``python -m reliquary.trust.rules``: check a rule set, run its policy tests, or print the schema.

check RULES              validate; print the policy version (exit 0), or the errors (exit 2)
test RULES TESTS         run the policy tests; print each case; exit 1 if any fails (2 if invalid)
schema                   print the JSON Schema of the rule language
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from reliquary.errors import InvalidRequestError
from reliquary.trust.rules._api import load_rule_set, schema
from reliquary.trust.rules._policytest import load_policy_tests, run_policy_tests

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="python -m reliquary.trust.rules", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a rule set and print its policy version")
    check.add_argument("rules")
    test = sub.add_parser("test", help="run policy tests against a rule set")
    test.add_argument("rules")
    test.add_argument("tests")
    sub.add_parser("schema", help="print the JSON Schema")
    args = parser.parse_args(argv)

    if args.command == "schema":
        out.write(json.dumps(schema(), indent=2) + "\n")
        return EXIT_OK
    try:
        rule_set = load_rule_set(args.rules)
        cases = load_policy_tests(args.tests, rule_set=rule_set) if args.command == "test" else []
    except InvalidRequestError as exc:
        err.write(f"invalid: {exc.message}\n")
        return EXIT_INVALID
    except OSError as exc:
        err.write(f"cannot read: {exc}\n")
        return EXIT_INVALID
    out.write(
        f"{rule_set.source}: {rule_set.name}, {len(rule_set.rules)} rules, "
        f"policy version {rule_set.policy_version}\n"
    )
    if args.command == "check":
        return EXIT_OK
    results = run_policy_tests(rule_set, cases)
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        detail = "" if result.passed else ": " + "; ".join(result.problems)
        out.write(f"{status} {result.case.name}{detail}\n")
    failed = sum(not r.passed for r in results)
    out.write(f"{len(results) - failed} passed, {failed} failed\n")
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
