"""The trust package loads its parts on use: importing the facts (the agents) or the models (the history
store) loads neither scoring, the templates nor PyYAML; the package's public names still resolve to what
they always were; YAML is read when a template first is. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
import yaml

from reliquary.trust.templates import _documents

REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = f"{REPO}:{REPO / 'layers' / 'core'}:{REPO / 'layers' / 'native'}"
HEAVY = ("yaml", "reliquary.trust.scoring", "reliquary.trust.templates", "reliquary.trust.rules")


def _fresh(code: str) -> dict[str, object]:
    done = subprocess.run(  # noqa: S603  (this interpreter, a fixed probe)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PYTHONPATH": PYTHONPATH, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_parts_load_alone_and_the_package_names_resolve_on_use() -> None:
    found = _fresh(
        f"""
        import json, sys
        heavy = {HEAVY!r}
        from reliquary.trust.facts import FACTS  # the submodule first, as the agents load it
        from reliquary.trust.model import TrustRequest
        import reliquary.trust as trust
        alone = [m for m in heavy if m in sys.modules]
        from reliquary.trust import facts, score, load_template, template_names, FACTOR_NAMES, summarize
        import reliquary.trust.scoring as scoring
        before_template = "yaml" in sys.modules
        strict = load_template("strict")
        try:
            trust.no_such_name
            missing = None
        except AttributeError as e:
            missing = str(e)
        print(json.dumps({{
            "alone": alone,
            "facts_is_scoring": facts is scoring.facts and trust.facts is scoring.facts,
            "score_is_scoring": score is scoring.score,
            "facts_module_intact": sys.modules["reliquary.trust.facts"].FACTS is FACTS and "score" in FACTS,
            "yaml_before_template": before_template,
            "yaml_after_template": "yaml" in sys.modules,
            "strict": strict.name,
            "templates": list(template_names()),
            "factors": len(FACTOR_NAMES),
            "listed": all(n in dir(trust) for n in trust.__all__),
            "missing": missing,
        }}))
        """
    )
    assert found["alone"] == []
    assert found["facts_is_scoring"] is True
    assert found["score_is_scoring"] is True
    assert found["facts_module_intact"] is True
    assert found["yaml_before_template"] is False
    assert found["yaml_after_template"] is True
    assert found["strict"] == "strict"
    assert found["templates"] == ["standard", "strict", "research"]
    assert found["factors"] == 16
    assert found["listed"] is True
    assert found["missing"] == "module 'reliquary.trust' has no attribute 'no_such_name'"


@pytest.mark.parametrize("first", ["package", "facts"])
def test_the_package_facts_is_scorings_whichever_loads_first(first: str) -> None:
    prelude = "import reliquary.trust" if first == "package" else "import reliquary.trust.facts"
    found = _fresh(
        f"""
        import json
        {prelude}
        from reliquary.trust import facts
        from reliquary.trust.scoring import facts as scoring_facts
        print(json.dumps({{"same": facts is scoring_facts}}))
        """
    )
    assert found == {"same": True}


def test_the_default_policy_reads_the_standard_template_and_default_rules_on_first_use() -> None:
    found = _fresh(
        """
        import json, sys
        from reliquary.trust.policy import TrustPolicy, default_policy
        before = "yaml" in sys.modules
        policy = default_policy()
        print(json.dumps({
            "before": before,
            "after": "yaml" in sys.modules,
            "once": default_policy() is policy,
            "template": policy.scoring_template().name,
            "rules": policy.rule_set().policy_version == TrustPolicy().rule_set().policy_version,
        }))
        """
    )
    assert found == {"before": False, "after": True, "once": True, "template": "standard", "rules": True}


def test_the_shipped_templates_read_as_the_pure_python_safe_loader_reads_them() -> None:
    package = resources.files("reliquary.trust")
    expected = tuple(
        yaml.safe_load(package.joinpath(name).read_text(encoding="utf-8"))
        for name in ("defaults.yaml", "templates.yaml")
    )
    assert yaml.__with_libyaml__  # the wheel's parser, as deployed: the fast path is the one tested
    assert _documents() == expected


def test_the_rules_load_without_the_policy_test_runner_which_their_package_names_still_give() -> None:
    found = _fresh(
        """
        import json, sys
        import reliquary.trust.rules as rules
        alone = "reliquary.trust.rules._policytest" in sys.modules
        from reliquary.trust.rules import BASELINE_FACTS, run_policy_tests
        import reliquary.trust.rules._policytest as policytest
        try:
            rules.no_such_name
            missing = None
        except AttributeError as e:
            missing = str(e)
        print(json.dumps({
            "alone": alone,
            "runner": run_policy_tests is policytest.run_policy_tests,
            "facts": BASELINE_FACTS is policytest.BASELINE_FACTS,
            "listed": all(n in dir(rules) for n in rules.__all__),
            "missing": missing,
        }))
        """
    )
    assert found == {
        "alone": False,
        "runner": True,
        "facts": True,
        "listed": True,
        "missing": "module 'reliquary.trust.rules' has no attribute 'no_such_name'",
    }
