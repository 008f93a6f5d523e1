"""Dataset specs: the built-in ones load, and a broken spec names the key that is wrong."""

from __future__ import annotations

import pytest

from warehouse.errors import SpecError
from warehouse.spec import builtin_spec_names, load_spec, parse_spec

MINIMAL = """
name = "mini"
[customers]
files = ["c.csv"]
[[customers.columns]]
name = "customer_id"
type = "int"
role = "id"
description = "Key."
"""


def test_builtin_specs_are_the_documented_four() -> None:
    assert builtin_spec_names() == ["demo", "german-credit", "online-retail", "taiwan-default"]


@pytest.mark.parametrize("name", ["demo", "german-credit", "online-retail", "taiwan-default"])
def test_builtin_spec_loads(name: str) -> None:
    spec, text = load_spec(name)
    assert spec.name == name
    assert text.strip()
    assert spec.sources()


def test_minimal_spec_parses() -> None:
    spec = parse_spec(MINIMAL, "mini.toml")
    assert spec.customers is not None and spec.target is None


def test_yaml_spec_parses() -> None:
    text = """
name: mini
customers:
  files: [c.csv]
  columns:
    - {name: customer_id, type: int, role: id, description: Key.}
    - {name: flag, source: Flag, type: bool, role: target, positive: "Y", description: Defaulted.}
"""
    spec = parse_spec(text, "mini.yaml")
    assert spec.target is not None and spec.target.positive == "Y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'x'\n[customers\n", "does not parse"),
        (MINIMAL.replace('type = "int"', 'type = "integer"'), "customers.columns.0.type"),
        (MINIMAL.replace('role = "id"', 'role = "id"\ncolour = "red"'), "customers.columns.0.colour: unknown key"),
        (MINIMAL.replace('description = "Key."', ""), "customers.columns.0.description: this key is required"),
        (MINIMAL.replace('name = "customer_id"', 'name = "cust"'), "needs a column named 'customer_id'"),
        (MINIMAL.replace('name = "customer_id"', 'name = "Customer ID"'), "must be snake_case"),
        ("name = 'x'", "needs at least one of customers"),
        (
            MINIMAL + '[[customers.columns]]\nname="t"\ntype="bool"\nrole="target"\ndescription="Default."\n',
            "needs 'positive'",
        ),
    ],
)
def test_bad_spec_names_the_key(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "bad.toml")
    message = str(caught.value)
    assert expected in message
    assert message.startswith("Spec bad.toml")
    assert "\n" not in message


def test_unknown_spec_name_lists_the_builtins() -> None:
    with pytest.raises(SpecError, match="neither a built-in spec .*demo.*nor an existing file"):
        load_spec("no-such-spec")
